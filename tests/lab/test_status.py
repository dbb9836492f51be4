"""``immutable-hosts status`` against lab hosts: every field against what the host itself says, a staged install as a
pending reboot with its reasons, a busy transaction, host keys refused and accepted, an unreachable host beside the
others, and reading as ``core`` with and without ``--become``.

Three hosts in a lab of their own (two Silverblue, one bootc-only), so the session's hosts are neither needed nor
touched; the lab goes down at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import SRC, state_dir_of_its_own

from immutable_hosts.lab.api import Lab

pytestmark = pytest.mark.lab

SILVERBLUE = ["status-1", "status-2"]
BOOTC = "status-bootc-1"
HOSTS = [*SILVERBLUE, BOOTC]
QUADLET_SETUP = (
    "mkdir -p /etc/containers/systemd/users /home/core/.config/containers/systemd/a.container.d"
    " && printf '[Container]\\nImage=localhost/lab/busybox:latest\\n' > /etc/containers/systemd/web.container"
    " && printf '[Volume]\\n' > /etc/containers/systemd/data.volume"
    " && cp /etc/containers/systemd/web.container /etc/containers/systemd/users/every-user.container"
    " && cp /etc/containers/systemd/web.container /home/core/.config/containers/systemd/a.container"
    " && printf '[Container]\\n' > /home/core/.config/containers/systemd/a.container.d/override.conf"
    " && chown -R core:core /home/core/.config"
)


@pytest.fixture(scope="module")
def status_lab(tmp_path_factory: pytest.TempPathFactory, lab_state_dir: Path) -> Iterator[Path]:
    state_dir = state_dir_of_its_own(tmp_path_factory, lab_state_dir, "lab-status")
    lab = Lab(state_dir)
    try:
        lab.up(hosts=2, profile="silverblue", name="status")
        lab.up(hosts=1, profile="bootc-only", name="status-bootc")
        yield state_dir
    finally:
        lab.down()


def immutable_hosts(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))}
    env["COLUMNS"] = "400"  # the table's rows on one line each
    argv = [sys.executable, "-m", "immutable_hosts.cli", "status", *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def status_json(inventory: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    done = immutable_hosts("-i", str(inventory), "--json", *args)
    assert done.stdout.startswith("{"), f"rc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done, json.loads(done.stdout)


def on(state_dir: Path, host: str, *command: str) -> str:
    return Lab(state_dir).exec(host, list(command), check=True).stdout


def inventory_copy(state_dir: Path, tmp_path: Path, change) -> Path:
    """The lab's inventory with ``change(document)`` applied, written next to the test."""
    document = yaml.safe_load((state_dir / "inventory.yml").read_text())
    change(document)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def deployment_of(document: dict, role: str) -> dict | None:
    return next((d for d in document["deployments"] if d.get(role)), None)


def test_every_field_is_what_the_host_says(status_lab: Path, tmp_path: Path) -> None:
    on(status_lab, SILVERBLUE[0], "sh", "-c", QUADLET_SETUP)
    done, document = status_json(status_lab / "inventory.yml", "--html", str(tmp_path / "status.html"))
    assert done.returncode == 0, done.stderr
    hosts = document["hosts"]
    assert sorted(hosts) == sorted(HOSTS)
    assert document["summary"] == {"hosts": 3, "ok": 3, "reboot_required": 0, "busy": 0, "unreachable": 0, "failed": 0}
    for name in HOSTS:
        report = hosts[name]
        assert report["status"] == "ok" and report["error"] is None, report
        assert report["architecture"] == on(status_lab, name, "uname", "-m").strip()
        assert set(report["timings"]) == {"connect", "handshake", "auth", "command"}
        apps = on(status_lab, name, "flatpak", "list", "--system", "--app", "--columns=application").split()
        runtimes = on(status_lab, name, "flatpak", "list", "--system", "--runtime", "--columns=application").split()
        assert report["flatpaks"] == {"apps": len(apps), "runtimes": len(runtimes)}
    for name in SILVERBLUE:
        own = json.loads(on(status_lab, name, "rpm-ostree", "status", "--json"))
        booted = deployment_of(own, "booted")
        report = hosts[name]
        assert report["backend"] == "rpm-ostree"
        assert report["booted"]["origin"] == booted["origin"]
        assert report["booted"]["checksum"] == booted["checksum"]
        assert report["booted"]["version"] == booted["version"]
        assert report["layered_packages"] == len(booted["requested-packages"])
        assert report["staged"] is None and deployment_of(own, "staged") is None
        assert report["reboot_required"] is False and report["transaction"] is None
    # the Quadlet units written above: two of the system, one for every user, core's own (its drop-in is no unit)
    assert hosts[SILVERBLUE[0]]["quadlets"] == {"system": 2, "for_users": 1, "users": {"core": 1}}
    assert hosts[SILVERBLUE[1]]["quadlets"] == {"system": 0, "for_users": 0, "users": {}}
    own = json.loads(on(status_lab, BOOTC, "bootc", "status", "--format=json"))
    report = hosts[BOOTC]
    assert report["backend"] == "bootc"
    assert report["booted"]["digest"] == own["status"]["booted"]["image"]["imageDigest"]
    assert report["booted"]["kind"] == "image" and report["layered_packages"] is None
    assert report["staged"] is None and own["status"]["staged"] is None
    page = (tmp_path / "status.html").read_text()
    assert all(f'data-host="{name}" data-status="ok"' in page for name in HOSTS)


def test_a_staged_install_is_a_pending_reboot_with_its_reasons_and_a_busy_host_is_shown(status_lab: Path) -> None:
    host, busy_host = SILVERBLUE
    on(status_lab, host, "rpm-ostree", "install", "tmux")
    lab = Lab(status_lab)
    busy = threading.Thread(target=lab.sim, args=(busy_host, "busy", "25"), daemon=True)
    busy.start()
    try:
        deadline = time.monotonic() + 20
        while json.loads(on(status_lab, busy_host, "rpm-ostree", "status", "--json"))["transaction"] is None:
            assert time.monotonic() < deadline, "the simulated transaction did not start"
            time.sleep(0.5)
        done, document = status_json(status_lab / "inventory.yml")
        own_busy = json.loads(on(status_lab, busy_host, "rpm-ostree", "status", "--json"))
    finally:
        busy.join(timeout=60)
    assert done.returncode == 0, done.stderr
    own = json.loads(on(status_lab, host, "rpm-ostree", "status", "--json"))
    staged = deployment_of(own, "staged")
    report = document["hosts"][host]
    assert report["reboot_required"] is True
    assert report["reboot_reasons"] == ["staged-update", "layering-changed"]
    assert report["staged"]["checksum"] == staged["checksum"] == report["pending"]["checksum"]
    assert report["staged"]["layered_packages"] == len(staged["requested-packages"]) == 1
    assert report["layered_packages"] == 0
    transaction = document["hosts"][busy_host]["transaction"]
    assert transaction is not None and transaction["method"] == own_busy["transaction"][0]
    assert document["summary"]["reboot_required"] == 1 and document["summary"]["busy"] == 1
    # the table says the same
    table = immutable_hosts("-i", str(status_lab / "inventory.yml"))
    assert table.returncode == 0 and "yes: staged-update, layering-changed" in table.stdout, table.stdout


def test_unknown_host_keys_are_refused_unless_accepted_and_a_changed_key_always(status_lab: Path, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")

    def own_known_hosts(document: dict) -> None:
        settings = document["all"]["vars"]
        settings["ansible_ssh_common_args"] = settings["ansible_ssh_common_args"].replace(
            str(status_lab / "ssh" / "known_hosts"), str(known_hosts)
        )

    inventory = inventory_copy(status_lab, tmp_path, own_known_hosts)
    done, document = status_json(inventory)
    assert done.returncode == 3
    for report in document["hosts"].values():
        assert (report["status"], report["error_kind"]) == ("unreachable", "host-key")
        assert "unknown host key" in report["error"] and "--accept-new-host-keys" in report["error"]
    assert known_hosts.read_text() == ""

    done, document = status_json(inventory, "--accept-new-host-keys")
    assert done.returncode == 0, done.stderr
    assert all(r["status"] == "ok" for r in document["hosts"].values())
    lab_keys = {tuple(line.split()[1:3]) for line in (status_lab / "ssh" / "known_hosts").read_text().splitlines()}
    added = [line.split() for line in known_hosts.read_text().splitlines()]
    addresses = {document["hosts"][name]["address"] for name in HOSTS}
    assert {entry[0] for entry in added} == addresses and len(added) == 3
    assert {tuple(entry[1:3]) for entry in added} <= lab_keys

    done, document = status_json(inventory)  # now known: no flag needed
    assert done.returncode == 0 and not any(r["warnings"] for r in document["hosts"].values())

    # one host's entry replaced by another host's key: refused as changed, even when new keys are accepted
    first, second = added[0], added[1]
    known_hosts.write_text("\n".join(" ".join([first[0], *second[1:3]]) if e is first else " ".join(e) for e in added) + "\n")
    done, document = status_json(inventory, "--accept-new-host-keys")
    assert done.returncode == 3
    changed = [r for r in document["hosts"].values() if r["status"] != "ok"]
    assert len(changed) == 1 and changed[0]["address"] == first[0]
    assert "host key CHANGED" in changed[0]["error"]


def test_an_unreachable_host_is_reported_and_the_others_still_are(status_lab: Path, tmp_path: Path) -> None:
    def add_hosts(document: dict) -> None:
        document["all"]["children"]["silverblue"]["hosts"]["gone"] = {"ansible_host": "192.0.2.1"}  # TEST-NET-1
        document["all"]["children"]["silverblue"]["hosts"]["templated"] = {"ansible_host": "{{ lookup('pipe', 'id') }}"}

    inventory = inventory_copy(status_lab, tmp_path, add_hosts)
    started = time.monotonic()
    done, document = status_json(inventory, "-T", "3")
    assert time.monotonic() - started < 60
    assert done.returncode == 3
    hosts = document["hosts"]
    assert (hosts["gone"]["status"], hosts["gone"]["error_kind"]) == ("unreachable", "unreachable")
    assert "192.0.2.1" in hosts["gone"]["error"]
    assert (hosts["templated"]["status"], hosts["templated"]["error_kind"]) == ("failed", "inventory")
    assert "Jinja template" in hosts["templated"]["error"]
    assert all(hosts[name]["status"] == "ok" for name in HOSTS)
    assert document["summary"]["unreachable"] == 1 and document["summary"]["failed"] == 1


def test_as_core_with_and_without_become(status_lab: Path, tmp_path: Path) -> None:
    """core reads what it may; root's own Quadlet units (in /root, 0700) only show with --become."""
    host = SILVERBLUE[1]
    on(
        status_lab,
        host,
        "sh",
        "-c",
        "mkdir -p /root/.config/containers/systemd && : > /root/.config/containers/systemd/r.container",
    )
    inventory = inventory_copy(status_lab, tmp_path, lambda d: d["all"]["vars"].update(ansible_user="core"))
    done, document = status_json(inventory, "-l", host)
    assert done.returncode == 0, done.stderr
    report = document["hosts"][host]
    assert (report["status"], report["user"]) == ("ok", "core")
    assert report["warnings"] == ["read as core, not root: other users' Quadlet units may be missing (--become)"]
    assert report["quadlets"]["users"] == {}
    assert "read as core, not root" in done.stderr

    done, document = status_json(inventory, "-l", host, "--become")
    assert done.returncode == 0, done.stderr
    report = document["hosts"][host]
    assert report["status"] == "ok" and report["warnings"] == []
    assert report["quadlets"]["users"] == {"root": 1}
    own = json.loads(on(status_lab, host, "rpm-ostree", "status", "--json"))
    assert report["booted"]["checksum"] == deployment_of(own, "booted")["checksum"]
