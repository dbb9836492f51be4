"""The health role's boot-time gate (roles/health/files/health-check): what it records and does on each boot.

The gate runs real check scripts through bash; ``ostree``, ``systemctl``, ``rpm-ostree`` and ``bootc`` answer from
a table of what they print on a host (ostree's text status, as ``ostree admin status`` prints it).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parents[3] / "roles" / "health" / "files" / "health-check"
GOOD = "1776c3e37c350ae16b5aa4da5d9baa716410dbdd63386866c5ffd1112485347f"
NEW = "f571804130f0b9126159ff889f40aef3957c4f4e55969859f4d7e2a9f5a9cdd7"


def ostree_status(booted: str, other: str | None) -> str:
    """``ostree admin status`` after an update (the previous deployment is the rollback) or on a first deployment."""
    lines = [f"* fedora {booted}.0", "    Version: 41.20241112.10", "    origin: <unknown origin type>"]
    if other:
        lines += [f"  fedora {other}.0 (rollback)", "    Version: 41.20241112.8", "    origin: <unknown origin type>"]
    return "\n".join(lines) + "\n"


def load_gate():
    loader = importlib.machinery.SourceFileLoader("health_check", str(GATE))
    spec = importlib.util.spec_from_loader("health_check", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class Host:
    """The gate's view of a host: the booted deployment, a boot ID, the tools' answers, and what was run."""

    def __init__(self, tmp_path: Path, monkeypatch, booted: str = GOOD, rollback: str | None = NEW, tool: str = "rpm-ostree"):
        self.gate = load_gate()
        self.checks = tmp_path / "greenboot"
        self.state = tmp_path / "state" / "state.json"
        self.boot_id = tmp_path / "boot_id"
        self.booted, self.rollback, self.tool = booted, rollback, tool
        self.calls: list[list[str]] = []
        self.new_boot()
        real_run = self.gate.run

        def run(argv, timeout=600):
            if argv[0] in ("ostree", "systemctl", "rpm-ostree", "bootc"):
                self.calls.append(list(argv))
                out = ostree_status(self.booted, self.rollback) if argv[:3] == ["ostree", "admin", "status"] else ""
                return subprocess.CompletedProcess(argv, 0, out, "")
            return real_run(argv, timeout)

        monkeypatch.setattr(self.gate, "run", run)
        monkeypatch.setattr(self.gate, "BOOT_ID", str(self.boot_id))
        monkeypatch.setattr(
            self.gate.shutil, "which", lambda name, path=None: "/usr/bin/" + name if name in (tool, "bash") else None
        )

    def new_boot(self) -> None:
        count = getattr(self, "boots", 0) + 1
        self.boots = count
        self.boot_id.write_text("0b3c1f4e-5a77-4c0e-9d55-%012d\n" % count)

    def check(self, kind: str, name: str, script: str) -> None:
        directory = self.checks / kind
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(script)

    def boot(self, *extra: str) -> int:
        self.calls = []
        return self.gate.main(["--checks", str(self.checks), "--state", str(self.state), "--max-failed-boots", "2", *extra])

    def recorded(self) -> dict:
        return json.loads(self.state.read_text())

    def acted(self) -> list:
        return [call for call in self.calls if call[0] != "ostree"]


def test_a_healthy_deployment_is_recorded_and_nothing_is_done(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.check("check/required.d", "10-true.sh", "exit 0\n")
    host.check("check/wanted.d", "20-wanted.sh", "echo low disk; exit 1\n")
    host.check("check/required.d", "README", "not a script: greenboot runs *.sh only\nexit 1\n")
    host.check("green.d", "50-green.sh", f"touch {tmp_path}/green-ran\n")
    assert host.boot() == 0
    state = host.recorded()
    assert state["status"] == "green" and state["failures"] == [] and state["wanted_failures"] == ["20-wanted.sh"]
    assert state["healthy_deployments"] == [f"{GOOD}.0"] and state["action"] == "none" and state["failed_boots"] == 0
    assert [r["name"] for r in state["required"]] == ["10-true.sh"] and (tmp_path / "green-ran").exists()
    assert host.acted() == []


def test_a_new_deployment_that_fails_reboots_then_rolls_back(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, booted=GOOD, rollback=None)
    host.check("check/required.d", "10-app.sh", f"ostree_booted=$(cat {tmp_path}/booted); test $ostree_booted = {GOOD}\n")
    host.check("red.d", "50-red.sh", f"echo red >> {tmp_path}/red-ran\n")
    (tmp_path / "booted").write_text(GOOD)
    assert host.boot() == 0  # the deployment before the update is healthy

    host.booted, host.rollback = NEW, GOOD  # the update booted
    (tmp_path / "booted").write_text(NEW)
    host.new_boot()
    assert host.boot() == 1
    state = host.recorded()
    assert state["status"] == "red" and state["failed_boots"] == 1 and state["action"] == "reboot"
    assert state["failures"] == ["10-app.sh"] and state["healthy_deployments"] == [f"{GOOD}.0"]
    assert host.acted() == [
        [
            "systemctl",
            "reboot",
            f"--message=immutable-hosts-health: deployment {NEW}.0 failed boot 1 of 2 (required check failed: 10-app.sh)",
        ]
    ]

    host.boot()  # the same boot again (the unit restarted by hand) is not another failed boot
    assert host.recorded()["failed_boots"] == 1

    host.new_boot()
    assert host.boot() == 1
    state = host.recorded()
    assert state["action"] == "rollback" and state["failed_boots"] == 2
    assert state["last_rollback"]["from"] == f"{NEW}.0" and state["last_rollback"]["reason"] == "required check failed: 10-app.sh"
    assert host.acted() == [
        ["rpm-ostree", "rollback"],
        ["systemctl", "reboot", f"--message=immutable-hosts-health: rolled back from {NEW}.0 (required check failed: 10-app.sh)"],
    ]
    assert (tmp_path / "red-ran").read_text().count("red") == 3

    host.booted, host.rollback = GOOD, NEW  # back on the deployment before
    (tmp_path / "booted").write_text(GOOD)
    host.new_boot()
    assert host.boot() == 0
    state = host.recorded()
    assert state["status"] == "green" and state["deployment"] == f"{GOOD}.0" and state["failed_boots"] == 0
    assert state["last_rollback"]["from"] == f"{NEW}.0", "the last rollback stays on record"


def test_bootc_alone_rolls_back_with_bootc(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, booted=NEW, rollback=GOOD, tool="bootc")
    host.check("check/required.d", "10-false.sh", "exit 3\n")
    host.boot()
    host.new_boot()
    host.boot()
    assert ["bootc", "rollback"] in host.acted() and host.recorded()["required"][0]["rc"] == 3


def test_a_deployment_that_was_healthy_is_never_rolled_back_from(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.check("check/required.d", "10-flaky.sh", f"test -e {tmp_path}/ok\n")
    (tmp_path / "ok").write_text("")
    assert host.boot() == 0
    (tmp_path / "ok").unlink()
    for _boot in range(3):
        host.new_boot()
        assert host.boot() == 1
    state = host.recorded()
    assert state["status"] == "red" and state["action"] == "none" and host.acted() == []


@pytest.mark.parametrize(
    ("extra", "rollback", "acted", "action"),
    [
        (["--no-reboot"], GOOD, [["rpm-ostree", "rollback"]], "rollback"),
        ([], None, [], "none"),
        (["--no-act"], GOOD, [], "none"),
    ],
)
def test_what_limits_the_gate(tmp_path, monkeypatch, extra, rollback, acted, action):
    """--no-reboot queues the rollback only; without a rollback deployment nothing can be done; --no-act (the role's
    run on the running deployment) acts on nothing and counts nothing."""
    host = Host(tmp_path, monkeypatch, booted=NEW, rollback=rollback)
    host.check("check/required.d", "10-false.sh", "exit 1\n")
    for _boot in range(2):
        host.new_boot()
        assert host.boot(*extra) == 1
    assert host.acted() == acted and host.recorded()["action"] == action
    if "--no-act" in extra:
        assert host.recorded()["failed_boots"] == 0


def test_a_check_that_hangs_fails_after_the_timeout(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, rollback=None)
    host.check("check/required.d", "10-hang.sh", "sleep 30\n")
    assert host.boot("--timeout", "0.5", "--no-act") == 1
    assert host.recorded()["required"] == [{"name": "10-hang.sh", "rc": 124, "output": "timed out after 0.5 s"}]
