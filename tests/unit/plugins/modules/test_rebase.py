"""immutable.hosts.rebase with rpm-ostree and with bootc, answering from the contract's documents."""

from __future__ import annotations

import json

import pytest

from ansible_collections.immutable.hosts.plugins.modules import rebase as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

STATUS = "rpm-ostree status --json"
BOOTC = "bootc status --format=json"
SB41 = "quay.io/fedora/fedora-silverblue:41"
# What rpm-ostree needs for a signed image: a default that is not insecureAcceptAnything alone, the docker transport's
# own default for everything else, and the image's namespace verified.
POLICY = {
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {"": [{"type": "insecureAcceptAnything"}], "quay.io/fedora": [{"type": "sigstoreSigned", "keyPath": "/k"}]}
    },
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


def test_signed_under_a_lone_insecure_default_is_refused_before_rpm_ostree(host, ostree_module):
    """Fedora's stock default with a verified scope added: ostree-ext refuses every signed image under it, so the module
    says how to fix the policy instead of letting rpm-ostree fail."""
    lone = {"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": POLICY["transports"]["docker"]}}
    (host / "etc/containers/policy.json").write_text(json.dumps(lone))
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    result = ostree_module(module, {"image": SB41, "_ansible_check_mode": True}, tools)
    assert result["failed"] is True and tools.calls == [STATUS]
    assert "default is insecureAcceptAnything alone" in result["msg"] and "type=reject" in result["msg"]
    unverified = Tools({STATUS: (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), "")})
    assert ostree_module(module, {"image": SB41, "signature": "unverified", "_ansible_check_mode": True}, unverified)["changed"]


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


def silverblue_with(requested: list) -> str:
    doc = json.loads(fixture_text("rpm-ostree-status-plain-silverblue.json"))
    doc["deployments"][0]["requested-packages"] = requested
    doc["deployments"][0]["packages"] = requested
    return json.dumps(doc)


REBASE_42 = "fedora:fedora/42/x86_64/silverblue"
QUEUED = (0, 'Changes queued for next boot. Run "systemctl reboot" to start a reboot\n', "")


def test_install_layers_missing_packages_in_the_rebase_transaction(host, ostree_module):
    tools = Tools(
        {
            STATUS: [(0, silverblue_with(["htop"]), ""), (0, rebased_status(), "")],
            "rpm-ostree rebase --install=zsh --install=fish " + REBASE_42: QUEUED,
        }
    )
    result = ostree_module(module, {"ref": "fedora/42/x86_64/silverblue", "install": ["htop", "zsh", "fish"]}, tools)
    assert result["changed"] is True and result["installed"] == ["zsh", "fish"] and result["provided_by_base"] == {}
    assert tools.calls == [STATUS, "rpm-ostree rebase --install=zsh --install=fish " + REBASE_42, STATUS]
    assert result["diff"]["before"]["requested_packages"] == ["htop"]
    assert result["diff"]["after"]["requested_packages"] == ["fish", "htop", "zsh"]


def test_install_in_check_mode_is_predicted_and_nothing_runs(host, ostree_module):
    tools = Tools({STATUS: (0, silverblue_with([]), "")})
    args = {"ref": "fedora/42/x86_64/silverblue", "install": ["zsh"], "_ansible_check_mode": True}
    result = ostree_module(module, args, tools)
    assert result["changed"] is True and tools.calls == [STATUS]
    assert result["installed"] == ["zsh"] and result["diff"]["after"]["requested_packages"] == ["zsh"]
    assert result["reboot_reasons"] == ["origin-changed", "layering-changed"]


def test_a_package_the_new_base_provides_is_dropped_and_the_rebase_retried(host, ostree_module):
    refused = (
        1,
        "",
        'error: "zsh" is already provided by: zsh-5.9-15.fc42.x86_64. Use --allow-inactive to explicitly require it.\n',
    )
    tools = Tools(
        {
            STATUS: [(0, silverblue_with([]), ""), (0, rebased_status(), "")],
            "rpm-ostree rebase --install=zsh --install=fish " + REBASE_42: refused,
            "rpm-ostree rebase --install=fish " + REBASE_42: QUEUED,
        }
    )
    result = ostree_module(module, {"ref": "fedora/42/x86_64/silverblue", "install": ["zsh", "fish"]}, tools)
    assert result["changed"] is True and result["installed"] == ["fish"]
    assert result["provided_by_base"] == {"zsh": "zsh-5.9-15.fc42.x86_64"}
    assert tools.calls.count("rpm-ostree rebase --install=fish " + REBASE_42) == 1


def test_install_without_a_rebase_runs_nothing(host, ostree_module):
    tools = Tools({STATUS: (0, fixture_text("rpm-ostree-status-container-origin.json"), "")})
    result = ostree_module(module, {"image": "docker://" + SB41, "install": ["zsh"]}, tools)
    assert result["changed"] is False and result["installed"] == [] and tools.calls == [STATUS]


def test_install_refuses_local_files_and_the_bootc_backend(host, ostree_module):
    tools = Tools({})
    result = ostree_module(module, {"ref": "fedora/42/x86_64/silverblue", "install": ["/tmp/x.rpm"]}, tools)
    assert result["failed"] is True and "not local RPMs" in result["msg"] and tools.calls == []
    tools = Tools({}, present=("bootc",))
    result = ostree_module(module, {"image": SB41, "install": ["zsh"]}, tools)
    assert result["failed"] is True and "bootc switch cannot" in result["msg"] and tools.calls == []
