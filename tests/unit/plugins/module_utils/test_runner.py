"""The runner: argv only, C locale, binary lookup, timeouts, and waiting out a busy rpm-ostree on a fake clock."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _runner as runner_mod
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import (
    BinaryNotFound,
    BusyTimeout,
    CommandFailed,
    CommandTimeout,
    Runner,
    RunnerError,
    busy_title,
)

BUSY = "error: Transaction in progress: install --idempotent htop\n You can cancel the current transaction with `rpm-ostree cancel`\n"


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A spawner that answers from a list of (rc, stdout, stderr) and records what it was given."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, argv, env, timeout, stdin, cwd):
        self.calls.append({"argv": argv, "env": env, "timeout": timeout, "stdin": stdin})
        return self.answers.pop(0)


def make_with_clock(script, clock=None):
    clock = clock or FakeClock()
    return Runner(spawn=script, clock=clock, sleep=clock.sleep, exists=lambda path: path == "/usr/bin/rpm-ostree"), clock


def make(script):
    return make_with_clock(script)[0]


@pytest.mark.parametrize(
    ("stderr", "title"),
    [
        (BUSY, "install --idempotent htop"),
        ("error: Updating deployment: Transaction in progress: upgrade (download only)\n", "upgrade (download only)"),
        (
            "error: GDBus.Error:org.gtk.GDBus.UnmappedGError.Quark._g_2dio_2derror_2dquark.Code26: Transaction in progress: automatic (stage)\n",
            "automatic (stage)",
        ),
        ("error: System transaction in progress\n", "System transaction in progress"),
        ("error: Transaction in progress: \n", "(untitled transaction)"),
        ("error: Package/capability 'htop' is already requested\n", None),
        ("", None),
    ],
)
def test_busy_title(stderr, title):
    assert busy_title(stderr) == title


def test_runs_argv_with_c_locale_and_resolved_binary(monkeypatch):
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    monkeypatch.setenv("LC_MESSAGES", "de_DE.UTF-8")
    script = Script((0, "out", ""))
    runner = make(script)
    result = runner.run(["rpm-ostree", "status", "--json"])
    call = script.calls[0]
    assert call["argv"] == ["/usr/bin/rpm-ostree", "status", "--json"]
    assert call["env"]["LC_ALL"] == "C" and call["env"]["LANG"] == "C" and "LC_MESSAGES" not in call["env"]
    assert result.ok and result.stdout == "out"
    assert runner.commands == [["/usr/bin/rpm-ostree", "status", "--json"]]


@pytest.mark.parametrize("argv", ["rpm-ostree status", b"rpm-ostree", []])
def test_refuses_shell_strings_and_empty_commands(argv):
    runner = make(Script())
    with pytest.raises(TypeError):
        runner.run(argv)


def test_refuses_nul_bytes():
    runner = make(Script())
    with pytest.raises(RunnerError, match="NUL"):
        runner.run(["rpm-ostree", "kargs", "--append=a\x00b"])


def test_missing_binary_is_reported():
    runner = make(Script())
    with pytest.raises(BinaryNotFound, match="'bootc' not found"):
        runner.run(["bootc", "status"])


def test_failure_raises_with_stderr_and_ok_rcs_pass():
    runner = make(Script((1, "", "error: Packages not found: nope\n"), (77, "No change.\n", "")))
    with pytest.raises(CommandFailed, match="Packages not found: nope"):
        runner.run(["rpm-ostree", "install", "nope"])
    assert runner.run(["rpm-ostree", "install", "--unchanged-exit-77", "htop"], ok_rcs=(0, 77)).rc == 77


def test_timeout_is_passed_and_reported():
    def spawn(argv, env, timeout, stdin, cwd):
        raise CommandTimeout(argv, timeout)

    runner = make(spawn)
    with pytest.raises(CommandTimeout, match="within 5 seconds"):
        runner.run(["rpm-ostree", "status"], timeout=5)


def test_real_subprocess_timeout_and_locale():
    runner = Runner()
    with pytest.raises(CommandTimeout):
        runner.run(["sleep", "5"], timeout=0.2)
    result = runner.run(["sh", "-c", 'printf %s "$LC_ALL"'])
    assert result.stdout == "C"


def test_busy_is_retried_with_backoff_until_it_clears():
    script = Script((1, "", BUSY), (1, "", BUSY), (1, "", BUSY), (0, "Changes queued for next boot.\n", ""))
    runner, clock = make_with_clock(script)
    result = runner.run(["rpm-ostree", "install", "htop"], busy_deadline=runner.deadline(60))
    assert result.rc == 0 and len(script.calls) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_busy_past_deadline_fails_with_the_title():
    script = Script(*[(1, "", BUSY)] * 20)
    runner, clock = make_with_clock(script)
    with pytest.raises(BusyTimeout) as err:
        runner.run(["rpm-ostree", "install", "htop"], busy_deadline=runner.deadline(20))
    assert err.value.title == "install --idempotent htop"
    assert "install --idempotent htop" in str(err.value) and "wait_timeout" in str(err.value)
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 5.0], "backoff doubles and never sleeps past the deadline"
    assert clock.now == 120.0


def test_backoff_is_capped():
    script = Script(*[(1, "", BUSY)] * 10 + [(0, "", "")])
    runner, clock = make_with_clock(script)
    runner.run(["rpm-ostree", "upgrade"], busy_deadline=runner.deadline(1000))
    assert max(clock.sleeps) == runner_mod.BACKOFF_MAX


def test_busy_without_deadline_fails_at_once():
    runner, clock = make_with_clock(Script((1, "", BUSY)))
    with pytest.raises(CommandFailed, match="Transaction in progress"):
        runner.run(["rpm-ostree", "install", "htop"])
    assert clock.sleeps == []


def test_until_idle_is_the_one_backoff_loop():
    titles = iter(["Rebase", "Rebase", None])
    runner, clock = make_with_clock(Script())
    assert runner.until_idle(lambda: ("done", next(titles)), runner.deadline(60)) == "done"
    assert clock.sleeps == [1.0, 2.0]
    with pytest.raises(BusyTimeout, match="PkgChange"):
        runner.until_idle(lambda: (None, "PkgChange"), runner.deadline(3))


def test_output_and_input_keep_every_byte_of_a_line_end():
    """A value read back (a Podman secret, a file's text) compares exactly with the one written: no newline
    translation either way."""
    runner = Runner()
    assert runner.run(["printf", "windows line\\r\\ntwo\\n\\n"]).stdout == "windows line\r\ntwo\n\n"
    assert runner.run(["cat"], stdin="a\r\nb\r").stdout == "a\r\nb\r"
