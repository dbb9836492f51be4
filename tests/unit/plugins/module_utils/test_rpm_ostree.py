"""rpm-ostree status --json: every example document parsed and checked field by field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def parse(name: str) -> dict:
    return rpm_ostree.parse_status((FIXTURES / name).read_text())


def test_plain_silverblue():
    status = parse("rpm-ostree-status-plain-silverblue.json")
    booted, rollback = status["deployments"]
    assert status["osname"] == "fedora"
    assert (status["booted_index"], status["pending_index"], status["staged_index"], status["rollback_index"]) == (
        0,
        None,
        None,
        1,
    )
    assert status["merge_index"] == 0 and status["pinned_indexes"] == []
    assert status["transaction"] is None and status["cached_update"] is None and status["update_driver"] is None
    assert booted["id"] == "fedora-9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1.0"
    assert booted["checksum"] == booted["base_checksum"] == "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
    assert (booted["serial"], booted["booted"], booted["staged"], booted["pinned"], booted["unlocked"]) == (
        0,
        True,
        False,
        False,
        "none",
    )
    assert booted["origin"] == "fedora:fedora/41/x86_64/silverblue"
    assert booted["origin_parsed"] == {
        "kind": "refspec",
        "remote": "fedora",
        "ref": "fedora/41/x86_64/silverblue",
        "canonical": "fedora:fedora/41/x86_64/silverblue",
        "raw": "fedora:fedora/41/x86_64/silverblue",
    }
    assert (booted["version"], booted["timestamp"]) == ("41.20241104.0", 1730707200)
    assert booted["layered"] is False and booted["layered_commit_meta"] is None
    assert booted["gpg_enabled"] is True
    assert booted["base_commit_meta"]["ostree.linux"] == "6.11.6-300.fc41.x86_64"
    assert booted["requested_packages"] == booted["packages"] == booted["inactive_requests"] == []
    assert booted["base_removals"] == booted["base_local_replacements"] == [] and booted["base_remote_replacements"] == {}
    assert booted["regenerate_initramfs"] is False and booted["initramfs_args"] is None
    assert booted["pending_base_checksum"] is None
    assert rollback["pending_base_checksum"] == booted["checksum"]
    assert rollback["pending_base_version"] == "41.20241104.0" and rollback["pending_base_timestamp"] == 1730707200
    assert rollback["version"] == "41.20241020.0"
    raw_sig = load("rpm-ostree-status-plain-silverblue.json")["deployments"][0]["signatures"][0]
    assert booted["signatures"][0]["valid"] is raw_sig[0]
    assert booted["signatures"][0]["fingerprint"] == raw_sig[5]
    assert booted["signatures"][0]["user_email"] == raw_sig[11]
    assert rpm_ostree.reboot_state(status) == NOTHING_PENDING


def test_layered_staged_pinned():
    status = parse("rpm-ostree-status-layered-staged-pinned.json")
    staged, booted, pinned = status["deployments"]
    assert (status["booted_index"], status["pending_index"], status["staged_index"], status["rollback_index"]) == (1, 0, 0, 2)
    assert status["merge_index"] == 0, "changes stack on deployments[0], the staged one"
    assert status["pinned_indexes"] == [2] and pinned["pinned"] is True
    assert staged["staged"] is True and staged["booted"] is False and booted["booted"] is True
    assert staged["layered"] is True
    assert staged["base_checksum"] == "3a92051fc7a8a1e684f136f36a3d53135c3a8a3bce4c401e1d0f9f36c5565271" != staged["checksum"]
    assert (staged["base_version"], staged["base_timestamp"]) == ("41.20241110.0", 1731225600)
    assert staged["layered_commit_meta"]["rpmostree.clientlayer_version"] == 6
    assert staged["requested_packages"] == ["htop", "vim-enhanced"] and staged["packages"] == ["htop", "vim-enhanced"]
    assert booted["requested_packages"] == ["vim-enhanced"] and booted["packages"] == ["vim-enhanced"]
    assert staged["requested_local_packages"] == ["rpmfusion-free-release-41-1.noarch"]
    assert staged["requested_base_removals"] == ["firefox", "firefox-langpacks"]
    assert staged["base_removals"][0] == {
        "nevra": "firefox-132.0.1-1.fc41.x86_64",
        "name": "firefox",
        "epoch": 0,
        "version": "132.0.1",
        "release": "1.fc41",
        "arch": "x86_64",
    }
    assert booted["base_removals"][1]["name"] == "firefox-langpacks" and booted["base_removals"][1]["version"] == "132.0"
    assert booted["pending_base_checksum"] == staged["base_checksum"]
    assert pinned["layered"] is False and pinned["base_checksum"] == pinned["checksum"]
    update = status["cached_update"]
    assert update["version"] == "41.20241110.0" and update["ref_has_new_commit"] is True
    assert update["deployment"] == staged["id"] and update["update_sha256"] == booted["checksum"]
    assert update["rpm_diff"]["upgraded"][0] == {"name": "bash", "old": "5.2.32-1.fc41", "new": "5.2.37-1.fc41", "arch": "x86_64"}
    assert update["rpm_diff"]["added"] == [{"name": "htop", "evr": "3.3.0-4.fc41", "arch": "x86_64"}]
    assert update["advisories"][0]["id"] == "FEDORA-2024-0f1e2d3c4b" and update["advisories"][0]["severity"] == 3
    assert update["advisories"][0]["packages"] == ["bash-5.2.37-1.fc41.x86_64"]
    state = rpm_ostree.reboot_state(status)
    assert state["reboot_required"] is True
    assert state["reboot_reasons"] == [rpm_ostree.REASON_STAGED, rpm_ostree.REASON_LAYERING]


def test_container_origin():
    status = parse("rpm-ostree-status-container-origin.json")
    booted, rollback = status["deployments"]
    assert booted["origin"] == "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:41"
    parsed = booted["origin_parsed"]
    assert (parsed["kind"], parsed["sigverify"], parsed["transport"], parsed["registry"], parsed["tag"]) == (
        "container",
        "signed",
        "registry",
        "quay.io",
        "41",
    )
    assert booted["container_image_reference_digest"] == "sha256:525a307176388da34e6b6f4f3fc1f589121a122d851b6ce7a36850ffafaf19b9"
    assert booted["gpg_enabled"] is None, "container origins carry no gpg-enabled key"
    assert booted["version"] == "41.20241112.0"
    assert "ostree.manifest-digest" in booted["base_commit_meta"]
    assert rollback["origin_parsed"]["kind"] == "refspec" and rollback["pending_base_checksum"] is None
    assert (status["booted_index"], status["rollback_index"], status["pending_index"]) == (0, 1, None)


def test_busy_with_update_driver():
    status = parse("rpm-ostree-status-busy-update-driver.json")
    (booted,) = status["deployments"]
    assert status["osname"] == "fedora-coreos"
    assert status["transaction"] == {
        "method": "Rebase",
        "sender": ":1.87",
        "object_path": "/org/projectatomic/rpmostree1/fedora_coreos",
    }
    assert rpm_ostree.transaction_title(status) == "Rebase (client :1.87)"
    assert status["update_driver"] == {"name": "Zincati", "unit": "zincati.service"}
    assert booted["origin_parsed"]["sigverify"] == "remote" and booted["origin_parsed"]["remote"] == "fedora"
    assert booted["origin_parsed"]["normalized"] == "quay.io/fedora/fedora-coreos:stable"
    assert status["rollback_index"] is None


def test_every_example_parses_from_text_and_from_data():
    for path in sorted(FIXTURES.glob("rpm-ostree-status-*.json")):
        text = path.read_text()
        assert rpm_ostree.parse_status(text) == rpm_ostree.parse_status(json.loads(text))


def test_json_glib_spacing_parses():
    text = (FIXTURES / "rpm-ostree-status-plain-silverblue.json").read_text().replace('": ', '" : ')
    assert rpm_ostree.parse_status(text)["deployments"][0]["booted"] is True


@pytest.mark.parametrize(
    "document",
    ["", "not json", "[]", '{"transaction": null}', '{"deployments": [{"id": "x"}]}'],
)
def test_garbage_is_rejected(document):
    with pytest.raises(rpm_ostree.StatusParseError):
        rpm_ostree.parse_status(document)


# --- pending deployments and reboot reasons -----------------------------------------------------------------------


def _plain() -> dict:
    return load("rpm-ostree-status-plain-silverblue.json")


NOTHING_PENDING = {"reboot_required": False, "reboot_reasons": [], "staged_locked": False, "staged_locked_reasons": []}


def test_rollback_queued_is_pending_without_staging():
    doc = _plain()
    doc["deployments"].reverse()
    status = rpm_ostree.parse_status(doc)
    assert (status["pending_index"], status["booted_index"], status["staged_index"]) == (0, 1, None)
    assert rpm_ostree.reboot_state(status)["reboot_reasons"] == [rpm_ostree.REASON_ROLLBACK]


def test_finalization_locked_staged_deployment():
    doc = load("rpm-ostree-status-layered-staged-pinned.json")
    doc["deployments"][0]["finalization-locked"] = True
    status = rpm_ostree.parse_status(doc)
    assert status["deployments"][0]["finalization_locked"] is True
    # Before: reported as reboot_required, but a plain reboot discards a locked staged deployment.
    state = rpm_ostree.reboot_state(status)
    assert state["reboot_required"] is False and state["reboot_reasons"] == []
    assert state["staged_locked"] is True
    assert state["staged_locked_reasons"][:2] == [rpm_ostree.REASON_STAGED, rpm_ostree.REASON_FINALIZATION_LOCKED]


def test_nothing_pending_on_a_single_booted_deployment():
    doc = _plain()
    doc["deployments"] = doc["deployments"][:1]
    status = rpm_ostree.parse_status(doc)
    assert status["pending_index"] is None and status["rollback_index"] is None
    assert rpm_ostree.reboot_state(status) == NOTHING_PENDING


def test_kargs_change_is_a_reason_and_ostree_argument_is_ignored():
    doc = _plain()
    staged = copy.deepcopy(doc["deployments"][0])
    staged.update({"booted": False, "staged": True, "serial": 1, "id": staged["id"][:-1] + "1"})
    doc["deployments"].insert(0, staged)
    status = rpm_ostree.parse_status(doc)
    same = rpm_ostree.reboot_state(status, ["rw", "ostree=/ostree/boot.1/a"], ["rw", "ostree=/ostree/boot.0/b"])
    assert same["reboot_reasons"] == [rpm_ostree.REASON_STAGED]
    changed = rpm_ostree.reboot_state(status, ["rw"], ["rw", "mitigations=off"])
    assert changed["reboot_reasons"] == [rpm_ostree.REASON_STAGED, rpm_ostree.REASON_KARGS]


def test_rebase_is_an_origin_change():
    doc = load("rpm-ostree-status-container-origin.json")
    doc["deployments"].reverse()
    status = rpm_ostree.parse_status(doc)
    assert rpm_ostree.REASON_ORIGIN in rpm_ostree.reboot_state(status)["reboot_reasons"]


def test_another_stateroot_first_boots_next():
    """Before: deployments[0] of another stateroot was not pending, so reboot_required was false although that
    stateroot boots next (ostree admin set-default, image-based upgrades); the ostree backend already said so."""
    doc = _plain()
    other = copy.deepcopy(doc["deployments"][1])
    other.update({"osname": "rhel", "id": "rhel-" + other["checksum"] + ".0"})
    doc["deployments"].insert(0, other)
    status = rpm_ostree.parse_status(doc)
    assert status["pending_index"] == 0 and status["merge_index"] == 1 and status["rollback_index"] == 2
    state = rpm_ostree.reboot_state(status)
    assert state["reboot_required"] is True and state["reboot_reasons"][0] == rpm_ostree.REASON_STATEROOT
    assert rpm_ostree.REASON_ROLLBACK not in state["reboot_reasons"]


def test_inactive_request_is_requested_but_not_active():
    doc = _plain()
    doc["deployments"][0]["requested-packages"] = ["firefox", "htop"]
    doc["deployments"][0]["packages"] = ["htop"]
    status = rpm_ostree.parse_status(doc)
    assert status["deployments"][0]["inactive_requests"] == ["firefox"]
