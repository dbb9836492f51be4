"""The update gate program update_policy installs: what it reads (busctl, loginctl as they print) and its verdict."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _update_gate as update_gate

METERED = [
    "busctl",
    "get-property",
    "org.freedesktop.NetworkManager",
    "/org/freedesktop/NetworkManager",
    "org.freedesktop.NetworkManager",
    "Metered",
]
# loginctl of systemd 252 (SESSION UID USER SEAT TTY) and 256 (with STATE IDLE SINCE): the first column is the ID
SESSIONS_252 = "      2 1000 alice seat0 tty2\n     c1  120 gdm   seat0 tty1\n      7    0 root        pts/0\n"
SESSIONS_256 = "2 1000 alice seat0 1203 user-early tty2 no -\n7 0 root - 385 user - no -\nc13 0 root - 423 background - no -\n"
SHOW = {
    "2": "Class=user\nRemote=no\nState=active\nName=alice\n",
    "c1": "Class=greeter\nRemote=no\nState=online\nName=gdm\n",
    "7": "Class=user\nRemote=yes\nState=active\nName=root\n",
    "c13": "Class=background\nRemote=no\nState=active\nName=root\n",
}


def gate(answers: dict):
    """The program, as installed, with its commands answering from ``answers`` (None: the command fails)."""
    namespace: dict = {"__name__": "update_gate_program"}
    exec(compile(update_gate.PROGRAM, update_gate.GATE_PATH, "exec"), namespace)  # noqa: S102 - our own program's text
    calls = []

    def run(argv):
        calls.append(argv)
        key = argv[2] if argv[:2] == ["loginctl", "show-session"] else " ".join(argv[:2])
        return answers.get(key)

    namespace["run"] = run
    namespace["calls"] = calls
    return namespace


@pytest.mark.parametrize(
    ("metered", "sessions", "flags", "rc", "why"),
    [
        ("u 1\n", "", ["--skip-metered"], 1, "the connection is metered (NetworkManager: yes)"),
        ("u 3\n", "", ["--skip-metered", "--skip-user-sessions"], 1, "metered (NetworkManager: guess-yes)"),
        ("u 4\n", "", ["--skip-metered"], 0, "nothing holds the update back"),
        (None, "", ["--skip-metered"], 0, "nothing holds the update back"),  # no NetworkManager
        ("u 1\n", SESSIONS_252, ["--skip-user-sessions"], 1, "a user session is active: alice (session 2)"),
        ("u 2\n", SESSIONS_256, ["--skip-metered", "--skip-user-sessions"], 1, "alice (session 2)"),
        ("u 1\n", SESSIONS_252, [], 0, "nothing holds"),
    ],
)
def test_the_gates_verdict(capsys, metered, sessions, flags, rc, why):
    program = gate({"busctl get-property": metered, "loginctl list-sessions": sessions, **SHOW})
    assert program["main"](flags) == rc
    assert why in capsys.readouterr().err
    if "--skip-metered" in flags:
        assert program["calls"][0] == METERED


def test_only_local_user_sessions_count(capsys):
    program = gate({"loginctl list-sessions": SESSIONS_252, **SHOW})
    assert program["user_sessions"]() == ["alice (session 2)"]
    program = gate({"loginctl list-sessions": "      7    0 root        pts/0\n", **SHOW})
    assert program["main"](["--skip-user-sessions"]) == 0
    # systemd 256 and later: user-early is a user's session too, background (a service's PAM session) is not
    early = {
        "loginctl list-sessions": "3 1000 bob seat0 1 user-early tty3 no -\n",
        "3": "Class=user-early\nRemote=no\nState=online\nName=bob\n",
    }
    assert gate(early)["user_sessions"]() == ["bob (session 3)"]
    background = {"loginctl list-sessions": "c13 0 root - 423 background - no -\n", **SHOW}
    assert gate(background)["user_sessions"]() == []


def test_the_program_runs_as_the_host_runs_it(tmp_path):
    """The text compiles and runs under Python with no tools at all: nothing holds the update back."""
    path = tmp_path / "update-gate"
    path.write_text(update_gate.PROGRAM)
    done = subprocess.run(
        [sys.executable, str(path), "--skip-metered"], capture_output=True, text=True, env={"PATH": "/nonexistent"}, check=False
    )
    assert done.returncode == 0 and "nothing holds the update back" in done.stderr


def test_exec_condition_round_trip():
    line = update_gate.exec_condition("/usr/bin/python3", True, False)
    assert line == "ExecCondition=/usr/bin/python3 /usr/local/libexec/immutable-hosts/update-gate --skip-metered"
    assert update_gate.parse_exec_condition("[Service]\n" + line) == {"skip_metered": True, "skip_user_sessions": False}
    assert update_gate.exec_condition("/usr/bin/python3", False, False) is None
