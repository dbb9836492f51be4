"""The pull role's program (roles/pull/files/pull-run): ansible-pull's command line and environment, the logs and
reports it keeps, and the report it sends.

``run`` is driven with a stand-in for ansible-pull (a script in the settings' virtual environment that prints and
writes a report where the drift callback would); the real ansible-pull runs in tests/lab/test_pull.py. Sending is
tested against a real HTTP server on loopback.
"""

from __future__ import annotations

import datetime
import http.server
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
from pathlib import Path

import pytest

PROGRAM = Path(__file__).resolve().parents[3] / "roles" / "pull" / "files" / "pull-run"
NOW = datetime.datetime(2026, 12, 6, 5, 30, 0, tzinfo=datetime.timezone.utc)


def load_program():
    loader = importlib.machinery.SourceFileLoader("pull_run", str(PROGRAM))
    spec = importlib.util.spec_from_loader("pull_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


pull = load_program()


def settings(tmp_path: Path, **extra) -> dict:
    base = {
        "name": "pc-17.example.com",
        "url": "https://git.example.com/fleet.git",
        "branch": "main",
        "playbook": "site.yml",
        "inventory": "inventory",
        "mode": "converge",
        "tags": [],
        "verify_commit": True,
        "venv": str(tmp_path / "venv"),
        "state_dir": str(tmp_path / "state"),
        "reports_dir": str(tmp_path / "reports"),
        "python": "/usr/bin/python3",
        "keep": 3,
        "collector": None,
    }
    return pull.load_settings(json.dumps({**base, **extra}))


def test_the_command_line_runs_a_full_clean_verified_checkout_of_the_host_alone(tmp_path):
    argv = pull.pull_argv(settings(tmp_path))
    assert argv[0] == str(tmp_path / "venv/bin/ansible-pull") and argv[-1] == "site.yml"
    assert {"--full", "--clean", "--verify-commit", "--diff"} <= set(argv) and "--check" not in argv
    assert argv[argv.index("--limit") + 1] == "pc-17.example.com"
    assert argv[argv.index("--directory") + 1] == str(tmp_path / "state/checkout")
    assert argv[argv.index("--checkout") + 1] == "main" and argv[argv.index("--inventory") + 1] == "inventory"
    assert json.loads(argv[argv.index("--extra-vars") + 1]) == {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
    }
    assert "-o" not in argv and "--only-if-changed" not in argv  # a run that skips an unchanged repo never repairs drift


def test_a_check_runs_from_a_checkout_of_its_own_with_its_tags(tmp_path):
    argv = pull.pull_argv(settings(tmp_path, mode="check", tags=["flatpak", "os_image"], verify_commit=False))
    assert "--check" in argv and "--verify-commit" not in argv
    assert argv[argv.index("--directory") + 1] == str(tmp_path / "state/checkout-check")
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--tags"] == ["flatpak", "os_image"]


def test_the_environment_is_the_runs_own(tmp_path):
    base = {"PATH": "/usr/bin", "ANSIBLE_CONFIG": "/home/x/ansible.cfg", "LC_ALL": "C", "PYTHONPATH": "/x", "TERM": "dumb"}
    env = pull.pull_env(settings(tmp_path), "/r/x.json", base)
    assert "ANSIBLE_CONFIG" not in env and "LC_ALL" not in env and "PYTHONPATH" not in env and env["TERM"] == "dumb"
    assert env["LANG"] == "C.UTF-8" and env["PATH"].split(os.pathsep)[0] == str(tmp_path / "venv/bin")
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == "immutable.hosts.drift" and env["IMMUTABLE_HOSTS_DRIFT_REPORT"] == "/r/x.json"
    assert env["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0] == str(tmp_path / "state/checkout/collections")
    assert env["GNUPGHOME"] == str(tmp_path / "state/gnupg") and env["ANSIBLE_HOME"] == str(tmp_path / "state/ansible")


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"name": "../etc/passwd"}, "is not a host name"),
        ({"mode": "apply"}, "converge or check"),
        ({"keep": 0}, "keep is a number"),
        ({"venv": "venv"}, "not an absolute path"),
        ({"collector": {"url": "ftp://x/", "token_file": "/t"}}, "collector.url"),
        ({"collector": {"url": "https://x/", "token_file": "t"}}, "collector.token_file"),
        ({"url": ""}, "the settings have no url"),
    ],
)
def test_bad_settings_are_refused(tmp_path, extra, message):
    with pytest.raises(pull.SettingsError, match=message):
        settings(tmp_path, **extra)


def test_prune_keeps_the_newest_runs_and_nothing_else_is_touched(tmp_path):
    names = ["20261206T0%d0000Z-converge.log" % hour for hour in range(5)] + ["notes.txt"]
    for name in names:
        (tmp_path / name).write_text("")
    removed = pull.prune(str(tmp_path), 2)
    assert removed == names[:3]
    assert sorted(os.listdir(tmp_path)) == sorted(names[3:])


class Received(http.server.BaseHTTPRequestHandler):
    requests: list = []
    status = 201

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Received.requests.append((self.path, self.headers.get("Authorization"), self.headers.get("Content-Type"), body))
        self.send_response(Received.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Received.requests = []
    Received.status = 201
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Received)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/" % server.server_address[1]
    server.shutdown()
    server.server_close()


def token_file(tmp_path: Path, mode: int = 0o600) -> str:
    path = tmp_path / "token"
    path.write_text("s3cret-token-value\n")
    path.chmod(mode)
    return str(path)


def test_the_report_is_put_with_the_token_from_its_file(tmp_path, receiver):
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    outcome = pull.upload(config, b'{"x": 1}', sleep=lambda s: None)
    assert outcome.endswith("(HTTP 201)")
    assert Received.requests == [("/reports/pc-17.example.com", "Bearer s3cret-token-value", "application/json", b'{"x": 1}')]


def test_a_refused_report_is_not_sent_again_and_says_why(tmp_path, receiver):
    Received.status = 401
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    with pytest.raises(OSError, match="answered HTTP 401"):
        pull.upload(config, b"{}", sleep=lambda s: None)
    assert len(Received.requests) == 1


def test_a_server_error_is_tried_three_times(tmp_path, receiver):
    Received.status = 503
    waits = []
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    with pytest.raises(OSError, match="answered HTTP 503"):
        pull.upload(config, b"{}", sleep=waits.append)
    assert len(Received.requests) == 3 and waits == [2, 4]


def test_a_token_file_others_can_read_is_refused(tmp_path, receiver):
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path, 0o644)})
    with pytest.raises(pull.SettingsError, match="mode 0600"):
        pull.upload(config, b"{}", sleep=lambda s: None)
    assert Received.requests == []


STAND_IN = """#!{python}
import json, os, sys
print("Starting Ansible Pull at 2026-12-06 05:30:00")
print("ARGV " + json.dumps(sys.argv[1:]))
if os.environ.get("FAIL_CHECKOUT"):
    sys.exit(2)
with open(os.environ["IMMUTABLE_HOSTS_DRIFT_REPORT"], "w") as handle:
    json.dump({{"format": "immutable.hosts.drift/1", "hosts": {{"pc-17.example.com": {{"status": "in_sync"}}}}}}, handle)
print("PLAY RECAP")
"""


def stand_in(tmp_path: Path) -> None:
    script = tmp_path / "venv/bin/ansible-pull"
    script.parent.mkdir(parents=True)
    script.write_text(STAND_IN.format(python=os.path.realpath(sys.executable)))
    script.chmod(0o755)


def test_a_run_keeps_its_log_and_report_sends_it_and_records_the_outcome(tmp_path, receiver, capsys):
    stand_in(tmp_path)
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    assert pull.run(config, NOW, {"PATH": "/usr/bin"}) == 0
    log = (tmp_path / "state/logs/20261206T053000Z-converge.log").read_text()
    assert "Starting Ansible Pull" in log and "PLAY RECAP" in log and "ansible-pull exited 0" in log
    assert "s3cret" not in log and "s3cret" not in capsys.readouterr().out
    report = tmp_path / "reports/20261206T053000Z-converge.json"
    assert json.loads(report.read_text())["hosts"]["pc-17.example.com"]["status"] == "in_sync"
    assert Received.requests[0][3] == report.read_bytes()
    last = json.loads((tmp_path / "state/last-run.json").read_text())
    assert last["rc"] == 0 and last["sent"] is True and last["report"] == str(report)
    assert oct((tmp_path / "state").stat().st_mode & 0o777) == "0o700"


def test_only_the_newest_runs_are_kept(tmp_path, receiver):
    stand_in(tmp_path)
    config = settings(tmp_path)
    for minute in range(5):
        assert pull.run(config, NOW.replace(minute=minute), {"PATH": "/usr/bin"}) == 0
    assert sorted(os.listdir(tmp_path / "reports")) == ["20261206T05%02d00Z-converge.json" % m for m in (2, 3, 4)]
    assert len(os.listdir(tmp_path / "state/logs")) == 3


def test_a_failed_checkout_writes_no_report_and_sends_nothing(tmp_path, receiver):
    stand_in(tmp_path)
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    assert pull.run(config, NOW, {"PATH": "/usr/bin", "FAIL_CHECKOUT": "1"}) == 2
    last = json.loads((tmp_path / "state/last-run.json").read_text())
    assert last["rc"] == 2 and last["report"] is None and last["sent"] is None and Received.requests == []


def test_a_report_the_collector_refuses_fails_the_run_with_its_own_code(tmp_path, receiver):
    stand_in(tmp_path)
    Received.status = 400
    config = settings(tmp_path, collector={"url": receiver, "token_file": token_file(tmp_path)})
    assert pull.run(config, NOW, {"PATH": "/usr/bin"}) == pull.EXIT_UPLOAD
    assert json.loads((tmp_path / "state/last-run.json").read_text())["sent"] is False


def test_a_second_run_while_one_holds_the_lock_does_not_start(tmp_path):
    import fcntl

    stand_in(tmp_path)
    config = settings(tmp_path)
    os.makedirs(tmp_path / "state", mode=0o700)
    with open(tmp_path / "state/run.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert pull.run(config, NOW, {"PATH": "/usr/bin"}) == pull.EXIT_BUSY
    assert not (tmp_path / "reports").exists() or os.listdir(tmp_path / "reports") == []
