"""A bootc-only host (profile ``bootc-only``): an image-mode system without rpm-ostree, where bootc alone manages
the deployments. The simulator's ``bootc`` against contract section 4: ``upgrade --check`` (the booted entry's
``cachedUpdate``), ``--download-only`` (a finalization-locked staged deployment, ``downloadOnly``),
``--from-downloaded`` (unlocked, applied on the next boot), clap's conflicts, ``--soft-reboot`` (no lab deployment is
soft-reboot capable), ``rollback`` and its revert; and the facts read through ``bootc status``.

Host: bootc-only-1 (no other test file uses it). A new digest of the image it follows is published first.
"""

from __future__ import annotations

import json

import pytest

from immutable_hosts.lab import ostree_content

pytestmark = pytest.mark.lab

HOST = "bootc-only-1"
IMAGE = ostree_content.BOOTC_IMAGE


def sh(lab_session, command: str, rc: int | None = 0):
    done = lab_session.exec(HOST, "sh", "-c", command)
    if rc is not None:
        assert done.returncode == rc, f"{command} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def bootc_status(lab_session) -> dict:
    return json.loads(sh(lab_session, "bootc status --format=json").stdout)


def facts(lab) -> dict:
    run = lab.module("immutable.hosts.ostree_facts", hosts=[HOST])
    assert run.ok, run.explain()
    return run.results[0].result["ansible_facts"]["ostree"]


@pytest.fixture
def host(lab_hosts):
    lab_hosts(HOST)
    return HOST


def test_a_bootc_only_host_has_bootc_and_no_rpm_ostree(lab, lab_session, host) -> None:
    assert sh(lab_session, "command -v rpm-ostree", rc=None).returncode != 0
    assert sh(lab_session, "test -e /etc/rpm-ostreed.conf", rc=None).returncode != 0
    assert "bootc upgrade --apply --quiet" in sh(lab_session, "systemctl cat bootc-fetch-apply-updates.service").stdout
    status = bootc_status(lab_session)
    assert status["status"]["booted"]["image"]["image"] == {"image": IMAGE, "transport": "registry"}
    assert status["status"]["type"] == "bootcHost" and status["status"]["staged"] is None
    gathered = facts(lab)
    assert gathered["backend"] == "bootc" and gathered["booted"]["origin_parsed"]["name"] == IMAGE
    assert gathered["reboot_required"] is False and gathered["update_policy"] == {"timer_enabled": False}


def test_bootc_upgrade_check_download_only_and_from_downloaded(lab, lab_session, host) -> None:
    """The day/window lifecycle on the host: check, download without applying, then let the next boot apply it."""
    booted_digest = bootc_status(lab_session)["status"]["booted"]["image"]["imageDigest"]
    new_digest = lab_session.lab.publish(IMAGE)["index-digest"]

    checked = sh(lab_session, "bootc upgrade --check").stdout
    assert f"Update available for: {IMAGE}" in checked
    cached = bootc_status(lab_session)["status"]["booted"]["cachedUpdate"]
    assert cached["image"] == {"image": IMAGE, "transport": "registry"} and cached["architecture"] == "amd64"
    assert cached["imageDigest"] == new_digest != booted_digest
    assert facts(lab)["cached_update"]["digest"] == cached["imageDigest"]

    refused = sh(lab_session, "bootc upgrade --download-only --apply", rc=2)
    assert "the argument '--download-only' cannot be used with '--apply'" in refused.stderr
    assert bootc_status(lab_session)["status"]["staged"] is None

    downloaded = sh(lab_session, "bootc upgrade --download-only").stdout
    assert "Queued for next boot" in downloaded and "Image downloaded, but will not be applied on reboot" in downloaded
    staged = bootc_status(lab_session)["status"]["staged"]
    assert staged["downloadOnly"] is True and staged["image"]["imageDigest"] == cached["imageDigest"]
    gathered = facts(lab)
    assert gathered["staged"]["finalization_locked"] is True and gathered["staged_locked"] is True
    assert "Staged update present, not changed" in sh(lab_session, "bootc upgrade --download-only").stdout

    required = sh(lab_session, "bootc upgrade --from-downloaded --soft-reboot=required", rc=1)
    assert "Soft reboot was required but staged deployment is not soft-reboot capable" in required.stderr
    # the unlock happened before the soft-reboot check, as bootc does it; lock it again for the plain path
    assert bootc_status(lab_session)["status"]["staged"]["downloadOnly"] is False
    sh(lab_session, "bootc upgrade --download-only")
    assert bootc_status(lab_session)["status"]["staged"]["downloadOnly"] is True

    unlocked = sh(lab_session, "bootc upgrade --from-downloaded").stdout
    assert "Staged deployment will now be applied on reboot" in unlocked
    assert bootc_status(lab_session)["status"]["staged"]["downloadOnly"] is False
    again = sh(lab_session, "bootc upgrade --from-downloaded").stdout
    assert "Staged deployment is already set to apply on reboot" in again
    assert facts(lab)["reboot_required"] is True

    rebooted = lab.module("ansible.builtin.reboot", hosts=[host])
    assert rebooted.ok, rebooted.explain()
    booted = bootc_status(lab_session)["status"]
    assert booted["booted"]["image"]["imageDigest"] == cached["imageDigest"] and booted["staged"] is None
    assert "No update available." in sh(lab_session, "bootc upgrade").stdout


def test_bootc_rollback_and_its_revert(lab, lab_session, host) -> None:
    """After the upgrade above the host has a rollback deployment: rollback queues it, a second rollback reverts."""
    status = bootc_status(lab_session)["status"]
    if status["rollback"] is None:
        pytest.skip("needs the upgrade of the previous test (a rollback deployment)")
    assert "Next boot: rollback deployment" in sh(lab_session, "bootc rollback").stdout
    assert bootc_status(lab_session)["status"]["rollbackQueued"] is True and facts(lab)["reboot_required"] is True
    reverted = sh(lab_session, "bootc rollback").stdout
    assert "Reverting queued rollback state" in reverted and "Next boot: current deployment" in reverted
    assert bootc_status(lab_session)["status"]["rollbackQueued"] is False
    bad = sh(lab_session, "bootc rollback --soft-reboot=sometimes", rc=2)
    assert "invalid value 'sometimes' for '--soft-reboot" in bad.stderr
