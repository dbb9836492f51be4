"""playbooks/upgrade.yml: a rollout by rings, by digest, on a mixed pair of hosts that follow the lab's bootc image.

The canary ring is bootc-only-2 (bootc alone), the later ring bootc-2 (rpm-ostree). A rollout whose canary fails its
on-host health gate stops at the canary, which rolls itself back; a rollout during which ``lab sim publish`` moves the
tag ends with every ring on the digest the canary booted; ``--check`` says what each ring would do and changes
nothing; a rollout with nothing new changes nothing. The drift callback's report names each host's ring.

Hosts: bootc-only-2 and bootc-2 (no other test file uses them). Each test publishes the digests it rolls out.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from harness import Lab, passes_on, role_play
from snapshot import assert_unchanged, snapshot

from immutable_hosts.lab import ostree_content

pytestmark = pytest.mark.lab

CANARY, RING = "bootc-only-2", "bootc-2"
IMAGE = ostree_content.BOOTC_IMAGE
PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "upgrade.yml"
# Host variables: the demo's group_vars (test_roles puts them next to the lab inventory) would outrank group
# variables of an inventory file; they set rpm-ostreed.conf's policy for every host, which a host bootc alone manages
# has not.
ROLLOUT_VARS = {
    "os_image_image": IMAGE,
    "os_image_signature": "unverified",
    "os_image_update_policy": None,
    "os_image_update_timer": None,
    "upgrade_drift_role": "immutable.hosts.os_image",
    "upgrade_reboot_timeout": 180,
    "upgrade_health_timeout": 300,
}
RINGS = {"all": {"children": {"canary": {"hosts": {CANARY: ROLLOUT_VARS}}, "ring1": {"hosts": {RING: ROLLOUT_VARS}}}}}
GO = "/var/tmp/lab-rollout-go"


@pytest.fixture
def hosts(lab_hosts):
    return lab_hosts(CANARY, RING)


@pytest.fixture
def rollout(lab_session, tmp_path):
    """Run upgrade.yml over the two rings (the lab inventory plus the rings' groups), with the drift callback."""
    rings = tmp_path / "rings.yml"
    rings.write_text(json.dumps(RINGS))
    report = tmp_path / "drift.json"
    lab = Lab(
        lab_session.inventory,
        env={"ANSIBLE_CALLBACKS_ENABLED": "lab_results,immutable.hosts.drift", "IMMUTABLE_HOSTS_DRIFT_REPORT": str(report)},
    )

    def run(check: bool = False, **extra):
        report.unlink(missing_ok=True)
        done = lab.playbook(
            PLAYBOOK,
            [CANARY, RING],
            check=check,
            diff=True,
            extra_vars={"upgrade_rings": ["canary", "ring1"], **extra},
            args=["-i", str(rings)],
            timeout=1200,
        )
        done.report = json.loads(report.read_text()) if report.exists() else None
        return done

    return run


def booted(lab_session, host: str) -> dict:
    """The booted image digest and deployment (checksum.serial) bootc or rpm-ostree reports."""
    if host == CANARY:
        status = json.loads(lab_session.exec(host, "bootc", "status", "--format=json").stdout)["status"]
        entry = status["booted"]
        return {
            "digest": entry["image"]["imageDigest"],
            "deployment": "%s.%d" % (entry["ostree"]["checksum"], entry["ostree"]["deploySerial"]),
        }
    status = json.loads(lab_session.exec(host, "rpm-ostree", "status", "--json").stdout)
    entry = next(d for d in status["deployments"] if d["booted"])
    return {
        "digest": entry.get("container-image-reference-digest"),
        "deployment": "%s.%d" % (entry["checksum"], entry["serial"]),
        "origin": entry.get("container-image-reference"),
    }


def test_a_canary_that_fails_its_health_gate_stops_the_rollout(lab, lab_session, hosts, rollout) -> None:
    good, ring_before = booted(lab_session, CANARY), booted(lab_session, RING)
    checks = [{"name": "10-application", "content": passes_on(good["deployment"].split(".")[0])}]
    play = role_play(CANARY, "immutable.hosts.health", {"health_required_checks": checks, "health_max_failed_boots": 2})
    installed = lab.playbook_text(play, hosts=[CANARY])
    assert installed.ok, installed.explain()
    lab_session.lab.publish(IMAGE)
    try:
        run = rollout()
        assert not run.ok and [t for t in run.results if t.task == "Stop the rollout"], run.explain()
        stopped = run.task("Stop the rollout", CANARY)
        assert stopped.status == "failed", stopped.result
        message = stopped.result["msg"]
        assert message.startswith(
            f"The rollout stops at ring canary: {CANARY} failed: ring canary: {CANARY} failed its health gate"
        ), message
        assert "the gate rolled the new deployment" in message and "back: required check failed: 10-application.sh" in message, (
            message
        )
        assert not [t for t in run.results if t.host == RING], "the later ring never started"
        assert booted(lab_session, CANARY)["deployment"] == good["deployment"] and booted(lab_session, RING) == ring_before
        assert run.report["hosts"][CANARY]["ring"] == "canary" and run.report["hosts"][CANARY]["status"] == "failed"
    finally:
        removed = lab.playbook_text(role_play(CANARY, "immutable.hosts.health", {"health_state": "absent"}), hosts=[CANARY])
        assert removed.ok, removed.explain()


def test_every_ring_ends_on_the_canarys_digest_when_the_tag_moves_mid_rollout(lab, lab_session, hosts, rollout) -> None:
    first = lab_session.lab.publish(IMAGE)["index-digest"]

    # --check: the canary would upgrade to the tag's digest, the later ring would rebase to exactly that digest
    before = {host: snapshot(lab_session.access(host)) for host in (CANARY, RING)}
    checked = rollout(check=True)
    assert checked.ok, checked.explain()
    assert checked.task("Stage the tag's current digest (the canaries)", CANARY).changed
    pinned = checked.task("Rebase to exactly the canaries' digest (the later rings)", RING)
    assert pinned.changed and f"@{first}" in json.dumps(pinned.diff), pinned.diff
    for host in (CANARY, RING):
        assert_unchanged(before[host], snapshot(lab_session.access(host)))
    assert [r["ring"] for r in checked.report["summary"]["rings"]] == ["canary", "ring1"]
    assert checked.report["hosts"][RING]["status"] == "drifted"

    # the rollout: once the canary booted the first digest, the tag moves; the later ring waits for that
    for host in (CANARY, RING):
        lab_session.exec(host, "rm", "-f", GO)
    wait = ["sh", "-c", f"until test -e {GO}; do sleep 1; done"]
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(run=rollout(upgrade_health_command=wait)))
    runner.start()
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and runner.is_alive():
        done = lab_session.exec(CANARY, "bootc", "status", "--format=json")
        if done.returncode == 0 and json.loads(done.stdout)["status"]["booted"]["image"]["imageDigest"] == first:
            break
        time.sleep(3)
    moved = lab_session.lab.publish(IMAGE)["index-digest"]
    for host in (CANARY, RING):
        lab_session.exec(host, "touch", GO)
    runner.join(900)
    run = outcome["run"]
    assert run.ok, run.explain()
    assert moved != first
    assert booted(lab_session, CANARY)["digest"] == first and booted(lab_session, RING)["digest"] == first
    assert booted(lab_session, RING)["origin"].endswith(f"fedora-silverblue@{first}")
    assert run.task("Record the digest this canary runs (or would run after a check)", CANARY).status == "ok"
    assert {name: host["ring"] for name, host in run.report["hosts"].items()} == {CANARY: "canary", RING: "ring1"}

    # the next rollout takes the moved tag to every ring; one after it finds nothing to do
    again = rollout()
    assert again.ok, again.explain()
    assert booted(lab_session, CANARY)["digest"] == moved and booted(lab_session, RING)["digest"] == moved
    converged = rollout()
    assert converged.ok and not converged.changed_tasks(CANARY) and not converged.changed_tasks(RING), [
        (t.host, t.task) for t in converged.changed_tasks()
    ]
    for host in (CANARY, RING):
        lab_session.exec(host, "rm", "-f", GO)
