"""immutable.hosts.python_venv with pip answering as pip 25 does (``list --format=json``, ``install --dry-run --report -``)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.python import _venv as venv
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, run_unit

PATH = "/var/lib/immutable-hosts/pull/venv"
INDEX = "http://images.lab:8088/pull/simple/"
PIP = "--disable-pip-version-check --no-input --no-cache-dir"
INDEX_OPTIONS = "--index-url %s --trusted-host images.lab:8088" % INDEX
VERSION = "python3 -c " + venv.VERSION_CODE
LIST = "python -m pip list --format=json " + PIP
DRY_RUN = "python -m pip install --dry-run --quiet --report - %s %s ansible-core>=2.19,<2.22" % (PIP, INDEX_OPTIONS)
INSTALL = "python -m pip install --quiet %s %s ansible-core>=2.19,<2.22" % (PIP, INDEX_OPTIONS)
MAKE = "python3 -m venv " + PATH
ARGS = {"path": PATH, "requirements": ["ansible-core>=2.19,<2.22"], "index_url": INDEX, "allow_insecure_index": True}
OK = (0, "", "")


class VenvTools(Tools):
    """The interpreter and pip; ``python3 -m venv`` lays the environment out under the test's root as venv does."""

    def __init__(self, root, answers):
        super().__init__(answers, present=())
        self.root = root

    def spawn(self, argv, env, timeout, stdin, cwd):
        answer = super().spawn(argv, env, timeout, stdin, cwd)
        if argv[1:3] == ["-m", "venv"] and answer[0] == 0:
            make_venv(self.root, "3.14.0")
        return answer

    def runner(self):
        runner = super().runner()
        runner.exists = lambda path: (self.root / path.lstrip("/")).exists()
        return runner


def make_venv(root, version: str) -> None:
    directory = root / PATH.lstrip("/")
    (directory / "bin").mkdir(parents=True, exist_ok=True)
    (directory / "bin/python").write_text("")
    (directory / "pyvenv.cfg").write_text(
        "home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\nexecutable = /usr/bin/python3\n" % version
    )


@pytest.fixture
def run(tmp_path, capsys):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3").write_text("")
    (tmp_path / "var/lib").mkdir(parents=True)

    def run(args, answers, check=False):
        tools = VenvTools(tmp_path, answers)
        host = Host(runner=tools.runner(), root=str(tmp_path), euid=0)
        result = run_unit(venv.UNIT, {**args, "_ansible_check_mode": check, "_ansible_diff": True}, host, capsys)
        return result, tools.calls

    run.root = tmp_path
    return run


def test_a_converged_environment_is_read_without_change(run):
    make_venv(run.root, "3.13.5")
    answers = {
        VERSION: (0, "3.13.5\n", ""),
        LIST: (0, fixture_text("pip/list.json"), ""),
        DRY_RUN: (0, fixture_text("pip/dry-run-satisfied.json"), ""),
    }
    result, calls = run(ARGS, answers)
    assert result["changed"] is False and result["action"] is None and calls == [VERSION, LIST, DRY_RUN]
    assert result["packages"]["ansible-core"] == "2.19.3" and result["packages"]["markupsafe"] == "3.0.3"


def test_what_pip_would_install_is_installed_in_one_run(run):
    make_venv(run.root, "3.13.5")
    upgraded = fixture_text("pip/list.json").replace("2.19.3", "2.19.4").replace('"3.0.3"', '"3.0.4"')
    answers = {
        VERSION: (0, "3.13.5\n", ""),
        LIST: [(0, fixture_text("pip/list.json"), ""), (0, upgraded, "")],
        DRY_RUN: (0, fixture_text("pip/dry-run-upgrade.json"), ""),
        INSTALL: OK,
    }
    result, calls = run(ARGS, answers)
    assert calls == [VERSION, LIST, DRY_RUN, INSTALL, LIST]
    assert result["changed"] is True and result["action"] == "install"
    assert result["installed"] == ["ansible-core==2.19.4", "markupsafe==3.0.4"]
    assert "ansible-core==2.19.3" in result["diff"]["before"]["packages"]
    assert "ansible-core==2.19.4" in result["diff"]["after"]["packages"] and result["packages"]["ansible-core"] == "2.19.4"


def test_check_mode_says_what_pip_would_install_and_installs_nothing(run):
    make_venv(run.root, "3.13.5")
    answers = {
        VERSION: (0, "3.13.5\n", ""),
        LIST: (0, fixture_text("pip/list.json"), ""),
        DRY_RUN: (0, fixture_text("pip/dry-run-upgrade.json"), ""),
    }
    result, calls = run(ARGS, answers, check=True)
    assert calls == [VERSION, LIST, DRY_RUN]
    assert result["changed"] is True and result["installed"] == ["ansible-core==2.19.4", "markupsafe==3.0.4"]
    assert result["packages"]["ansible-core"] == "2.19.4" and result["packages"]["pip"] == "25.1.1"


def test_a_missing_environment_is_made_and_filled(run):
    answers = {VERSION: (0, "3.14.0\n", ""), MAKE: OK, INSTALL: OK, LIST: (0, fixture_text("pip/list.json"), "")}
    result, calls = run(ARGS, answers)
    assert calls == [VERSION, MAKE, INSTALL, LIST]
    assert result["action"] == "create" and result["diff"]["before"] == {"state": "absent"}
    assert "ansible-core==2.19.3" in result["installed"] and result["diff"]["after"]["packages"] == result["installed"]
    assert oct(os.stat(run.root / PATH.lstrip("/")).st_mode & 0o777) == "0o755"


def test_check_mode_of_a_missing_environment_runs_only_the_interpreter(run):
    result, calls = run(ARGS, {VERSION: (0, "3.14.0\n", "")}, check=True)
    assert calls == [VERSION] and result["changed"] is True and result["action"] == "create"
    assert result["diff"]["after"] == {"state": "present", "python": "3.14.0", "packages": ["ansible-core>=2.19,<2.22"]}
    assert not (run.root / PATH.lstrip("/")).exists()


def test_another_python_makes_the_environment_again(run):
    make_venv(run.root, "3.13.5")
    answers = {VERSION: (0, "3.14.0\n", ""), LIST: (0, fixture_text("pip/list.json"), ""), MAKE: OK, INSTALL: OK}
    result, calls = run(ARGS, answers)
    assert result["action"] == "recreate" and "Python 3.13.5, the interpreter is Python 3.14.0" in result["reason"]
    assert calls == [VERSION, LIST, MAKE, INSTALL, LIST]
    assert "version = 3.14.0" in (run.root / PATH.lstrip("/") / "pyvenv.cfg").read_text()
    assert os.listdir(run.root / "var/lib/immutable-hosts/pull") == ["venv"]  # the old one is gone


def test_a_failed_install_puts_the_old_environment_back(run):
    make_venv(run.root, "3.13.5")
    answers = {
        VERSION: (0, "3.14.0\n", ""),
        LIST: (0, fixture_text("pip/list.json"), ""),
        MAKE: OK,
        INSTALL: (1, "", "ERROR: Could not find a version that satisfies the requirement ansible-core<2.22,>=2.19\n"),
    }
    result, calls = run(ARGS, answers)
    assert result["failed"] is True and "Could not find a version" in result["msg"]
    assert calls == [VERSION, LIST, MAKE, INSTALL]
    assert "version = 3.13.5" in (run.root / PATH.lstrip("/") / "pyvenv.cfg").read_text()
    assert os.listdir(run.root / "var/lib/immutable-hosts/pull") == ["venv"]


def test_a_new_environment_that_cannot_be_filled_is_removed(run):
    answers = {VERSION: (0, "3.14.0\n", ""), MAKE: OK, INSTALL: (1, "", "ERROR: No matching distribution found\n")}
    result, calls = run(ARGS, answers)
    assert result["failed"] is True and "No matching distribution" in result["msg"] and calls == [VERSION, MAKE, INSTALL]
    assert not (run.root / PATH.lstrip("/")).exists()


def test_an_unreachable_index_is_an_error_that_names_it(run):
    make_venv(run.root, "3.13.5")
    answers = {
        VERSION: (0, "3.13.5\n", ""),
        LIST: (0, fixture_text("pip/list.json"), ""),
        DRY_RUN: (1, "", "ERROR: Could not find a version that satisfies the requirement ansible-core (from versions: none)\n"),
    }
    result, calls = run(ARGS, answers)
    assert result["failed"] is True and "pip cannot resolve ansible-core>=2.19,<2.22" in result["msg"]
    assert calls == [VERSION, LIST, DRY_RUN]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"requirements": ["--index-url=http://evil/"]}, "is not one pip takes"),
        ({"requirements": ["https://example.com/x.whl"]}, "is not one pip takes"),
        ({"requirements": ["ansible-core; python_version>'3'"]}, "is not one pip takes"),
        ({"requirements": ["ansible-core", "Ansible_Core==2.19.4"]}, "each project is named once"),
        ({"requirements": []}, "needs at least one requirement"),
        ({"index_url": "http://images.lab:8088/simple/", "allow_insecure_index": False}, "plain HTTP"),
        ({"index_url": "ftp://images.lab/simple/"}, "not an http(s) URL"),
        ({"path": "/var/lib/../tmp/venv"}, "normalised path"),
        ({"path": "/venv"}, "top-level directory"),
        ({"python": "python3"}, "absolute"),
    ],
)
def test_bad_input_fails_before_any_command(run, args, message):
    result, calls = run({**ARGS, **args}, {})
    assert result["failed"] is True and message in result["msg"] and calls == []


def test_root_does_not_act_through_a_directory_others_can_write(run):
    (run.root / "var/lib/immutable-hosts").mkdir()
    os.chmod(run.root / "var/lib/immutable-hosts", 0o777)  # noqa: S103 - the unsafe directory under test
    result, calls = run(ARGS, {})
    assert result["failed"] is True and "/var/lib/immutable-hosts (owned by uid" in result["msg"] and calls == []


def test_root_does_not_act_through_a_symbolic_link(run):
    (run.root / "elsewhere").mkdir()
    os.symlink(run.root / "elsewhere", run.root / "var/lib/immutable-hosts")
    result, calls = run(ARGS, {})
    assert result["failed"] is True and "a symbolic link" in result["msg"] and calls == []


def test_absent_removes_the_environment(run):
    make_venv(run.root, "3.13.5")
    result, calls = run({"path": PATH, "state": "absent"}, {LIST: (0, fixture_text("pip/list.json"), "")})
    assert result["changed"] is True and result["action"] == "remove" and calls == [LIST]
    assert result["diff"]["after"] == {"state": "absent"} and "pip==25.1.1" in result["diff"]["before"]["packages"]
    assert not (run.root / PATH.lstrip("/")).exists()
    again, calls = run({"path": PATH, "state": "absent"}, {})
    assert again["changed"] is False and calls == []


def test_an_index_over_https_needs_no_trusted_host():
    assert venv.index_options("https://pypi.example.com/simple/", False) == ["--index-url", "https://pypi.example.com/simple/"]
    assert venv.index_options("http://user:pw@idx:81/s/", True)[-2:] == ["--trusted-host", "idx:81"]
