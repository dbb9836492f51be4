"""immutable.hosts.rebase with rpm-ostree and with bootc, answering from the contract's documents."""

from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.hosts.plugins.modules import rebase as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

STATUS = "rpm-ostree status --json"
BOOTC = "bootc status --format=json"
SB41 = "quay.io/fedora/fedora-silverblue:41"
POLICY = {
    "default": [{"type": "insecureAcceptAnything"}],
    "transports": {"docker": {"quay.io/fedora": [{"type": "sigstoreSigned", "keyPath": "/k"}]}},
}


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [])
    (tmp_path / "etc/containers").mkdir(parents=True)
    (tmp_path / "etc/containers/policy.json").write_text(json.dumps(POLICY))
    return tmp_path


def rebased_status() -> str:
    doc = json.loads(fixture_text("rpm-ostree-status-plain-silverblue.json"))
    new = json.loads(json.dumps(doc["deployments"][0]))
    new.update(
        {"booted": False, "staged": True, "origin": "fedora:fedora/42/x86_64/silverblue", "serial": 1, "id": new["id"][:-1] + "1"}
    )
    doc["deployments"].insert(0, new)
    return json.dumps(doc)


def test_converged_container_host_runs_only_the_status_read(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-container-origin.json"), "")})
    result = ostree_module(module, {"image": "docker://" + SB41}, tools)
    assert result["changed"] is False and tools.calls == [STATUS] and result["step"] == "none"
    assert result["origin"] == "ostree-image-signed:docker://" + SB41


def test_ref_rebase(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, fixture_text("rpm-ostree-status-plain-silverblue.json"), ""), (0, rebased_status(), "")],
            "rpm-ostree rebase fedora:fedora/42/x86_64/silverblue": (
                0,
                'Changes queued for next boot. Run "systemctl reboot" to start a reboot\n',
                "",
            ),
        }
    )
    result = ostree_module(module, {"ref": "fedora/42/x86_64/silverblue"}, tools)
    assert result["changed"] is True and result["step"] == "rebase" and result["backend"] == "rpm-ostree"
    assert result["diff"]["after"]["origin"] == "fedora:fedora/42/x86_64/silverblue"
    assert result["deployment"]["origin"] == "fedora:fedora/42/x86_64/silverblue"
    assert result["reboot_reasons"] == ["staged-update", "origin-changed"]


def test_check_mode_predicts_the_rebase(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    result = ostree_module(module, {"image": SB41, "_ansible_check_mode": True}, tools)
    assert result["changed"] is True and tools.calls == [STATUS]
    assert result["diff"]["after"]["origin"] == "ostree-image-signed:docker://" + SB41
    assert result["reboot_reasons"] == ["origin-changed"]


def test_signed_without_policy_fails_unless_bootstrap(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    result = ostree_module(module, {"image": "ghcr.io/ublue-os/silverblue-main:42"}, tools)
    assert result["failed"] is True and "bootstrap_unverified" in result["msg"] and tools.calls == [STATUS]
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    result = ostree_module(
        module, {"image": "ghcr.io/ublue-os/silverblue-main:42", "bootstrap_unverified": True, "_ansible_check_mode": True}, tools
    )
    assert result["step"] == "bootstrap" and result["origin"] == "ostree-unverified-registry:ghcr.io/ublue-os/silverblue-main:42"
    assert "first of two steps" in json.dumps(result["warnings"])


def test_update_driver_refuses_rebase(host, ostree_module):
    tools = Tools(
        {
            STATUS: (0, fixture_text("rpm-ostree-status-busy-update-driver.json").replace('"Rebase"', '""'), ""),
            "systemctl is-active zincati.service": (0, "active\n", ""),
        }
    )
    result = ostree_module(module, {"image": SB41}, tools)
    assert result["failed"] is True and "Zincati" in result["msg"]


def test_bootc_switch_and_its_refusal_of_layered_hosts(host, ostree_module):
    tools = Tools({BOOTC: (0, fixture_text("bootc-status-container-host.json"), "")}, present=("bootc",))
    converged = ostree_module(module, {"image": SB41}, tools)
    assert converged["changed"] is False and converged["backend"] == "bootc" and tools.calls == [BOOTC]
    tools = Tools({BOOTC: (0, fixture_text("bootc-status-container-host.json"), "")}, present=("bootc",))
    check = ostree_module(module, {"image": "quay.io/fedora/fedora-silverblue:42", "_ansible_check_mode": True}, tools)
    assert (
        check["changed"] is True
        and check["diff"]["after"]["origin"] == "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42"
    )
    tools = Tools({BOOTC: (0, fixture_text("bootc-status-incompatible-layered.json"), "")}, present=("bootc",))
    refused = ostree_module(module, {"image": SB41}, tools)
    assert refused["failed"] is True and "rpm-ostree reset" in refused["msg"]
    tools = Tools({}, present=("bootc",))
    ref = ostree_module(module, {"ref": "fedora:fedora/42/x86_64/silverblue"}, tools)
    assert ref["failed"] is True and "container images only" in ref["msg"] and tools.calls == []


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"ref": "a:b", "image": SB41},
        {"ref": "fedora:fedora/42", "signature": "unverified"},
        {"ref": "fedora:fedora/42", "transport": "oci"},
        {"image": SB41, "signature": "remote"},
        {"image": "quay.io/fedora/x:42;reboot"},
        {"ref": "fedora:fedora//42"},
        {"image": SB41, "backend": "bootc"},
    ],
)
def test_bad_input_fails_before_anything_runs(host, ostree_module, args):
    tools = Tools({})
    result = ostree_module(module, args, tools)
    assert result["failed"] is True and tools.calls == []
