"""immutable.hosts.podman_secret with podman answering as podman 5 does (``secret inspect --showsecret``)."""

from __future__ import annotations

import pwd

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _secrets as secrets
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, run_unit

AS_CORE = "runuser -u core -- env XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus "
INSPECT = AS_CORE + "podman secret inspect --showsecret --format {{.SecretData}}|end db"
CREATE = AS_CORE + "podman secret create --replace db -"
REMOVE = AS_CORE + "podman secret rm db"
MISSING = (125, "", 'Error: no secret with name or id "db": no such secret\n')
OK = (0, "", "")


class SecretTools(Tools):
    """podman and runuser on the host; what ``secret create`` read on its standard input is kept."""

    def __init__(self, answers):
        super().__init__(answers, present=("podman", "runuser"))
        self.stdin = []

    def spawn(self, argv, env, timeout, stdin, cwd):
        self.stdin.append(stdin)
        return super().spawn(argv, env, timeout, stdin, cwd)

    def runner(self):
        runner = super().runner()
        runner.exists = lambda path: path in ("/usr/bin/podman", "/usr/sbin/runuser", "/usr/bin/systemctl")
        return runner


@pytest.fixture
def run(tmp_path, capsys):
    """A host under tmp_path where core's systemd instance runs (its runtime directory exists)."""
    users = {"core": pwd.struct_passwd(("core", "x", 1000, 1000, "", "/home/core", "/bin/bash"))}
    (tmp_path / "run/user/1000/systemd").mkdir(parents=True)
    (tmp_path / "run/user/1000/systemd/private").write_text("")
    (tmp_path / "var/lib/systemd/linger").mkdir(parents=True)

    def run(args, tools):
        host = Host(runner=tools.runner(), root=str(tmp_path), passwd=users, euid=0)
        return run_unit(secrets.UNIT, dict({"user": "core"}, **args), host, capsys)

    run.root = tmp_path
    return run


def test_a_missing_secret_is_created_from_standard_input(run):
    tools = SecretTools({INSPECT: MISSING, CREATE: OK})
    result = run({"name": "db", "data": "s3cret\n"}, tools)
    assert result["changed"] is True and result["action"] == "create" and tools.calls == [INSPECT, CREATE]
    assert tools.stdin[1] == "s3cret\n" and "s3cret" not in str(result)
    assert result["diff"] == {"before": {"state": "absent"}, "after": {"state": "present", "data": "(as wanted)"}}


def test_the_same_data_with_its_trailing_newline_is_converged(run):
    tools = SecretTools({INSPECT: (0, "s3cret\n|end\n", "")})
    result = run({"name": "db", "data": "s3cret\n"}, tools)
    assert result["changed"] is False and tools.calls == [INSPECT]


def test_other_data_is_replaced_and_never_shown(run):
    tools = SecretTools({INSPECT: (0, "old-value|end\n", ""), CREATE: OK})
    result = run({"name": "db", "data": "new-value"}, tools)
    assert result["changed"] is True and result["action"] == "replace"
    assert result["diff"]["before"] == {"state": "present", "data": "(other data)"}
    assert "old-value" not in str(result) and "new-value" not in str(result)


def test_check_mode_reads_and_writes_nothing(run):
    tools = SecretTools({INSPECT: (0, "old|end\n", "")})
    result = run({"name": "db", "data": "new", "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and tools.calls == [INSPECT]


def test_absent(run):
    tools = SecretTools({INSPECT: (0, "x|end\n", ""), REMOVE: OK})
    assert run({"name": "db", "state": "absent"}, tools)["changed"] is True and tools.calls == [INSPECT, REMOVE]
    tools = SecretTools({INSPECT: MISSING})
    assert run({"name": "db", "state": "absent"}, tools)["changed"] is False


def test_an_old_podman_without_showsecret_fails_clearly(run):
    tools = SecretTools({INSPECT: (125, "", "Error: unknown flag: --showsecret\n")})
    result = run({"name": "db", "data": "x"}, tools)
    assert result["failed"] is True and "unknown flag: --showsecret" in result["msg"] and tools.calls == [INSPECT]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "db"}, "state is present but all of the following are missing: data"),
        ({"name": "../db", "data": "x"}, "is not valid"),
        ({"name": "db", "data": "a\x00b"}, "NUL"),
        ({"name": "db", "data": "a-long-secret", "user": "nobody-here"}, "does not exist"),
        ({"name": "db", "data": "x" * (1024 * 1024 + 1)}, "at most"),
    ],
)
def test_bad_input_fails_before_anything_runs(run, args, message):
    tools = SecretTools({})
    result = run(args, tools)
    if "\x00" in str(args.get("data")) and "embedded null character" in result["msg"]:
        message = "embedded null character"  # ansible-core 2.21 refuses it before the module runs
    assert result["failed"] is True and message in result["msg"] and tools.calls == [], result
    assert "s3cret" not in str(result)


def test_without_a_runtime_directory_podman_keeps_its_own(run):
    """No linger, no session: Podman runs without XDG_RUNTIME_DIR (its secrets live in the user's storage), and
    root's (an SSH session's /run/user/0) does not reach it."""
    import shutil

    shutil.rmtree(run.root / "run/user/1000")
    bare = "runuser -u core -- env -u XDG_RUNTIME_DIR -u DBUS_SESSION_BUS_ADDRESS podman secret inspect --showsecret --format {{.SecretData}}|end db"
    tools = SecretTools({bare: (0, "pw|end\n", "")})
    assert run({"name": "db", "data": "pw"}, tools)["changed"] is False and tools.calls == [bare]


def test_check_mode_without_a_runtime_directory_runs_no_podman(run):
    """Check mode never sets up the user's Podman storage; the secret is assumed missing, and the user told why."""
    import shutil

    shutil.rmtree(run.root / "run/user/1000")
    tools = SecretTools({})
    result = run({"name": "db", "data": "pw", "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and result["action"] == "create" and tools.calls == []
    assert "no runtime directory" in str(result["warnings"])


def test_linger_just_turned_on_starts_the_users_instance_first(run):
    private = run.root / "run/user/1000/systemd/private"
    private.unlink()
    (run.root / "var/lib/systemd/linger/core").write_text("")

    class Starting(SecretTools):
        def spawn(self, argv, env, timeout, stdin, cwd):
            if argv[1:] == ["start", "user@1000.service"]:
                private.write_text("")
            return super().spawn(argv, env, timeout, stdin, cwd)

    tools = Starting({"systemctl start user@1000.service": OK, INSPECT: (0, "pw|end\n", "")})
    result = run({"name": "db", "data": "pw"}, tools)
    assert result["changed"] is False and tools.calls == ["systemctl start user@1000.service", INSPECT]
