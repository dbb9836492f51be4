"""ostree admin status, keyfiles, origin files, rpm-ostreed.conf and BLS entries."""

from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree

A = "25e8d6825bd2b2b5dc9c5b4dba2b0b2a71ee1f6bf2fe2b0e0a3c1cd0bf8a7c8d"
B = "cbc80feb6d9b3b8a8a4d8f3cc9c0e8d1b79cd5d0b2a0f0a1f7a9b8b0e6d44ca0"
C = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"

STATUS_BOOTED_STAGED = f"""  fedora {A}.0 (staged)
    Version: 42.20250101.0
    origin refspec: fedora:fedora/42/x86_64/silverblue
* fedora {B}.0
    Version: 41.20241104.0
    origin: <unknown origin type>
  fedora {C}.1 (rollback)
    Version: 41.20241020.0
    Unlocked: \x1b[31m\x1b[1mdevelopment\x1b[22m\x1b[0m
    Pinned: yes
    origin refspec: fedora:fedora/41/x86_64/silverblue
    `- Fedora Silverblue 41
    GPG: Signature made Mon 04 Nov 2024 08:02:00 AM UTC using RSA key ID D0622462E99D6AD1
"""

STATUS_UNBOOTED = f"""  fedora {A}.0
    Version: 41.20241101.0
    origin refspec: fedora:fedora/41/x86_64/silverblue
  fedora {B}.0
    Version: 41.20241101.0
    Pinned: yes
    origin refspec: fedora:fedora/41/x86_64/silverblue
"""


def test_admin_status_with_booted_staged_and_rollback():
    deployments = ostree.parse_admin_status(STATUS_BOOTED_STAGED)
    staged, booted, rollback = deployments
    assert (staged["staged"], staged["pending"], staged["booted"]) == (True, True, False)
    assert staged["origin_parsed"]["ref"] == "fedora/42/x86_64/silverblue" and staged["version"] == "42.20250101.0"
    assert booted["booted"] is True and booted["origin"] is None and booted["origin_kind"] == "unknown"
    assert rollback["rollback"] is True and rollback["serial"] == 1 and rollback["pinned"] is True
    assert rollback["unlocked"] == "development"
    assert rollback["source_title"] == "Fedora Silverblue 41"
    assert rollback["gpg"][0].startswith("Signature made")
    roles = ostree.roles_from_flags(deployments)
    assert roles == {
        "booted_index": 1,
        "pending_index": 0,
        "staged_index": 0,
        "rollback_index": 2,
        "merge_index": 0,
        "pinned_indexes": [2],
    }


def test_admin_status_of_an_unbooted_sysroot_has_no_marker():
    deployments = ostree.parse_admin_status(STATUS_UNBOOTED)
    assert [d["booted"] for d in deployments] == [False, False]
    assert ostree.roles_from_flags(deployments)["booted_index"] is None
    assert deployments[1]["pinned"] is True


def test_admin_status_finalization_locked_and_pending():
    text = f"  fedora {A}.0 (finalization locked)\n    origin: none\n* fedora {B}.0\n"
    locked, _booted = ostree.parse_admin_status(text)
    assert locked["staged"] and locked["finalization_locked"] and locked["origin_kind"] == "none"
    text = f"  fedora {A}.0 (pending)\n* fedora {B}.0\n  fedora {C}.0 (rollback)\n"
    pending, booted, _rollback = ostree.parse_admin_status(text)
    assert pending["pending"] and not pending["staged"] and booted["booted"]


def test_no_deployments():
    assert ostree.parse_admin_status("No deployments.\n") == []


def test_unexpected_line_is_rejected():
    with pytest.raises(ostree.OstreeParseError):
        ostree.parse_admin_status("error: something odd\n")


def test_admin_status_json():
    doc = {
        "deployments": [
            {
                "checksum": A,
                "stateroot": "fedora",
                "refspec": "fedora:fedora/42/x86_64/silverblue",
                "serial": 0,
                "index": 0,
                "booted": False,
                "pending": True,
                "rollback": False,
                "finalization-locked": True,
                "soft-reboot-target": False,
                "staged": True,
                "pinned": False,
                "unlocked": "none",
                "version": "42.1",
            },
            {
                "checksum": B,
                "stateroot": "fedora",
                "serial": 0,
                "index": 1,
                "booted": True,
                "pending": False,
                "rollback": False,
                "staged": False,
                "pinned": True,
                "unlocked": "none",
            },
        ]
    }
    first, second = ostree.parse_admin_status_json(json.dumps(doc))
    assert first["finalization_locked"] and first["staged"] and first["version"] == "42.1"
    assert first["origin_parsed"]["remote"] == "fedora"
    assert second["booted"] and second["pinned"] and second["origin_kind"] == "unknown"


ORIGIN_LAYERED = """[origin]
baserefspec=fedora:fedora/41/x86_64/silverblue

[packages]
requested=vim-enhanced;htop;
requested-local=5f1c0ab5a2a4f0c3e7b6d1e9a8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9:rpmfusion-free-release-41-1.noarch;

[overrides]
remove=firefox;firefox-langpacks;

[libostree-transient]
pinned=true
"""


def test_origin_file_of_a_layered_deployment():
    origin = ostree.parse_origin_file(ORIGIN_LAYERED)
    assert origin["origin"] == "fedora:fedora/41/x86_64/silverblue"
    assert origin["requested_packages"] == ["htop", "vim-enhanced"]
    assert origin["requested_local_packages"] == ["rpmfusion-free-release-41-1.noarch"]  # NEVRA, as rpm-ostree shows it
    assert origin["requested_base_removals"] == ["firefox", "firefox-langpacks"]
    assert origin["pinned"] is True
    assert origin["rpm_ostree_groups"] == ["overrides", "packages"]


def test_origin_file_of_a_container_deployment():
    origin = ostree.parse_origin_file(
        "[origin]\ncontainer-image-reference=ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:41\n"
    )
    assert origin["origin_parsed"]["sigverify"] == "signed" and origin["requested_packages"] == []
    assert origin["rpm_ostree_groups"] == []


@pytest.mark.parametrize(
    ("text", "policy", "valid"),
    [
        (None, "none", True),
        ("[Daemon]\n#AutomaticUpdatePolicy=none\n", "none", True),
        ("[Daemon]\nAutomaticUpdatePolicy=stage\n", "stage", True),
        ("[Daemon]\nAutomaticUpdatePolicy=ex-stage\n", "stage", True),
        ("[Daemon]\nAutomaticUpdatePolicy=OFF\n", "none", True),
        ("[Daemon]\nAutomaticUpdatePolicy=Check\nLockLayering=true\nIdleExitTimeout=0\n", "check", True),
        ("[Daemon]\nAutomaticUpdatePolicy=sometimes\n", "sometimes", False),
    ],
)
def test_rpm_ostreed_conf(text, policy, valid):
    conf = ostree.parse_rpm_ostreed_conf(text)
    assert (conf["policy"], conf["policy_valid"]) == (policy, valid)
    if text and "LockLayering=true" in text:
        assert conf["lock_layering"] is True and conf["idle_exit_timeout"] == 0
    else:
        assert conf["lock_layering"] is False and conf["idle_exit_timeout"] == 60


def test_keyfile_rejects_garbage():
    with pytest.raises(keyfile.KeyfileError):
        keyfile.parse("no group here\n")


def test_bls_entry_and_boot_link():
    entry = ostree.parse_bls_entry(
        "title Fedora Linux 41.20241104.0 (Silverblue) (ostree:0)\n"
        "version 2\n"
        'options root=UUID=6f3b rw rhgb quiet ostree=/ostree/boot.1/fedora/7c3e/0 "acpi_osi=Windows 2020"\n'
        "linux /ostree/fedora-7c3e/vmlinuz-6.11.6-300.fc41.x86_64\n"
    )
    assert entry["title"].startswith("Fedora Linux") and entry["version"] == "2"
    assert entry["kargs"] == [
        "root=UUID=6f3b",
        "rw",
        "rhgb",
        "quiet",
        "ostree=/ostree/boot.1/fedora/7c3e/0",
        '"acpi_osi=Windows 2020"',
    ]
    assert ostree.ostree_boot_path(entry["kargs"]) == "/ostree/boot.1/fedora/7c3e/0"
    assert ostree.deployment_from_link(f"/ostree/deploy/fedora/deploy/{A}.0") == ("fedora", A, 0)
    assert ostree.deployment_from_link(f"../../../deploy/fedora/deploy/{A}.12") == ("fedora", A, 12)
    assert ostree.deployment_from_link("/ostree/boot.1/fedora/7c3e/0") is None
    assert ostree.split_kargs(None) == [] and ostree.split_kargs('a "b') == ["a", '"b']


def test_hardware_apple_silicon_from_the_device_tree():
    from ansible_collections.immutable.hosts.plugins.module_utils.ostree._facts import parse_hardware

    found = parse_hardware("x86_64", 16384, b"apple,j314s\0apple,t6000\0apple,arm-platform\0", None)
    assert found["apple_silicon"] is True and found["arch"] == "aarch64" and found["page_size"] == 16384
    assert found["compatible"] == ["apple,j314s", "apple,t6000", "apple,arm-platform"] and found["mac_vm"] is False


def test_hardware_mac_vm_from_the_hypervisors_dmi_vendor():
    from ansible_collections.immutable.hosts.plugins.module_utils.ostree._facts import parse_hardware

    vm = parse_hardware("aarch64", 4096, None, b"Parallels International GmbH.\n")
    assert vm["mac_vm"] is True and vm["hypervisor"] == "Parallels International GmbH." and vm["apple_silicon"] is False
    # the same vendor on x86_64 is an Intel Mac's VM: not Apple silicon, not a Mac VM of this kind
    intel = parse_hardware("x86_64", 4096, None, b"VMware, Inc.\n")
    assert intel["mac_vm"] is False and intel["arch"] == "x86_64" and intel["hypervisor"] is None
    qemu = parse_hardware("aarch64", 4096, b"linux,dummy-virt\0", b"QEMU\n")
    assert qemu["mac_vm"] is False and qemu["apple_silicon"] is False
