"""Smoke test of the lab itself: two hosts up, `ansible all -m ping` over SSH as root and core, a real reboot,
lab down, and nothing left behind (no netns, veth, mount, cgroup or process of that lab).

It runs in a lab of its own (a temp state dir whose image cache is the default lab's, so the image is built once),
so it neither needs nor disturbs the hosts of the session fixture.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import lab_cli, state_dir_of_its_own
from harness import Lab
from snapshot import HostAccess, snapshot, snapshot_hash

from immutable_hosts.lab.state import LabState

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def smoke_state_dir(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-smoke")
    try:
        yield state_dir
    finally:
        lab_cli("down", state_dir=state_dir, check=False)


def leftovers(state_dir: Path) -> dict[str, list[str]]:
    """Everything of this lab that could survive `lab down`."""
    lab_id = LabState(state_dir).lab_id
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = os.listdir("/sys/class/net")
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    cgroups = [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/immutable-hosts-lab-{lab_id}")]
    processes = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state_dir) in cmdline and "pytest" not in cmdline:
                processes.append(f"{proc.name}: {cmdline}")
    return {
        "netns": [n for n in netns if n.startswith(f"ihl{lab_id}-")],
        "links": [n for n in links if n.startswith(f"ihl{lab_id}v")],
        "mounts": [m for m in mounts if m.startswith(str(state_dir))],
        "cgroups": cgroups,
        "processes": processes,
    }


def boot_id(host: HostAccess) -> str:
    done = host.run(["cat", "/proc/sys/kernel/random/boot_id"])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_two_hosts_ping_reboot_and_clean_down(smoke_state_dir: Path) -> None:
    started = time.monotonic()
    lab_cli("up", "--hosts", "2", "--name", "smoke", state_dir=smoke_state_dir)
    up_seconds = time.monotonic() - started

    status = json.loads(lab_cli("status", "--json", state_dir=smoke_state_dir).stdout)
    assert [h["name"] for h in status["hosts"]] == ["smoke-1", "smoke-2"]
    assert {h["state"] for h in status["hosts"]} == {"running"}
    assert status["server"] is True

    # idempotent: a second `up` keeps the running hosts (same boot)
    host = HostAccess.from_state_dir(smoke_state_dir, "smoke-1")
    first_boot = boot_id(host)
    lab_cli("up", "--hosts", "2", "--name", "smoke", state_dir=smoke_state_dir)
    assert boot_id(host) == first_boot

    ansible = Lab(smoke_state_dir / "inventory.yml")
    for user in ("root", "core"):
        run = ansible.module("ansible.builtin.ping", hosts=["all"], user=user)
        assert run.ok, run.explain()
        assert sorted(r.host for r in run.results) == ["smoke-1", "smoke-2"]
        assert all(r.result.get("ping") == "pong" and not r.changed for r in run.results)

    # the image server is reachable from inside a host under its lab name
    fetched = host.run(["python3", "-c", "import urllib.request as u; print(u.urlopen('http://images.lab:8088/').status)"])
    assert fetched.stdout.strip() == "200", fetched.stderr

    # ansible.builtin.reboot works unchanged: boot_id changes, the supervisor restarted nspawn
    before = snapshot(host)
    run = ansible.module("ansible.builtin.reboot", {"reboot_timeout": 120}, hosts=["smoke-1"])
    assert run.ok and run.results[0].result.get("rebooted") is True, run.explain()
    assert boot_id(host) != first_boot
    status = json.loads(lab_cli("status", "--json", state_dir=smoke_state_dir).stdout)
    assert {h["name"]: h["boots"] for h in status["hosts"]} == {"smoke-1": 2, "smoke-2": 1}
    assert snapshot_hash(snapshot(host)) == snapshot_hash(snapshot(host))
    assert before  # the host has immutable-relevant state to snapshot

    lab_cli("down", state_dir=smoke_state_dir)
    assert leftovers(smoke_state_dir) == {"netns": [], "links": [], "mounts": [], "cgroups": [], "processes": []}
    status = json.loads(lab_cli("status", "--json", state_dir=smoke_state_dir).stdout)
    assert status["hosts"] == [] and status["server"] is False
    print(f"lab up (2 hosts) took {up_seconds:.1f}s")
