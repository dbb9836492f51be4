"""Layering plans against the contract's deployments, the commands they become, and input validation."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _packages as layering
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._packages import InvalidPackage, commands, plan_layering

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
LOCAL = "/var/tmp/rpmfusion-free-release-41-1.noarch.rpm"
LOCAL_NEVRA = "rpmfusion-free-release-41-1.noarch"


def merge_of(name: str) -> dict:
    status = rpm_ostree.parse_status((FIXTURES / name).read_text())
    return rpm_ostree.pick(status, "merge")


STAGED = merge_of("rpm-ostree-status-layered-staged-pinned.json")  # htop, vim-enhanced, local rpmfusion, -firefox
PLAIN = merge_of("rpm-ostree-status-plain-silverblue.json")


def test_rpm_header_nevra_of_real_packages():
    noarch = (FIXTURES / "rpms/rpmfusion-free-release-41-1.noarch.rpm").read_bytes()
    kernel = (FIXTURES / "rpms/kernel-core-6.11.7-300.fc41.x86_64.rpm").read_bytes()
    assert layering.rpm_nevra(noarch) == LOCAL_NEVRA
    assert layering.rpm_nevra(kernel) == "kernel-core-2:6.11.7-300.fc41.x86_64"
    assert layering.nevra_name("kernel-core-2:6.11.7-300.fc41.x86_64") == "kernel-core"
    with pytest.raises(InvalidPackage, match="lead magic"):
        layering.rpm_nevra(b"LABRPM1\n{}")
    with pytest.raises(InvalidPackage):
        layering.rpm_nevra(noarch[:100] + b"\x00" * 200)


@pytest.mark.parametrize("name", ["rpmfusion-free-release-41-1.noarch.rpm", "kernel-core-6.11.7-300.fc41.x86_64.rpm"])
def test_every_truncation_or_corruption_of_an_rpm_is_a_clear_error(name):
    """Before: a truncated header raised struct.error, a traceback instead of a message."""
    data = (FIXTURES / "rpms" / name).read_bytes()
    for length in range(len(data)):
        try:
            layering.rpm_nevra(data[:length])
        except InvalidPackage:
            continue
        # A prefix may hold a whole header (the payload is not needed for the NEVRA): then it must be the right one.
        assert layering.rpm_nevra(data[:length]) == layering.rpm_nevra(data)
    for offset in range(96, 400, 3):  # bytes flipped in the signature header and the header index
        corrupt = bytearray(data)
        corrupt[offset] ^= 0xFF
        with contextlib.suppress(InvalidPackage):  # anything but InvalidPackage fails the test
            layering.rpm_nevra(bytes(corrupt))


def test_pending_deployment_that_already_carries_the_change_is_converged():
    plan = plan_layering(
        STAGED, ["htop", "vim-enhanced", LOCAL], "present", local_nevras={LOCAL: LOCAL_NEVRA}, override_remove=["firefox"]
    )
    assert plan["changed"] is False and commands(plan) == []


def test_present_requests_only_what_is_missing_and_stacks_on_the_staged_deployment():
    plan = plan_layering(STAGED, ["htop", "tmux"], "present")
    assert plan["install"] == ["tmux"] and plan["uninstall"] == []
    assert plan["after"]["requested_packages"] == ["htop", "tmux", "vim-enhanced"]
    assert commands(plan) == [["install", "--idempotent", "--unchanged-exit-77", "tmux"]]


def test_exact_removes_the_rest_in_the_same_transaction():
    plan = plan_layering(STAGED, ["htop", "zsh"], "exact")
    assert plan["install"] == ["zsh"]
    assert plan["uninstall"] == ["vim-enhanced", LOCAL_NEVRA]
    assert commands(plan) == [
        ["install", "--idempotent", "--unchanged-exit-77", "--uninstall=vim-enhanced", "--uninstall=" + LOCAL_NEVRA, "zsh"]
    ]
    assert plan["after"]["requested_local_packages"] == []


def test_absent_uninstalls_requested_only():
    plan = plan_layering(STAGED, ["vim-enhanced", "tmux"], "absent")
    assert plan["uninstall"] == ["vim-enhanced"]
    assert commands(plan) == [["uninstall", "--idempotent", "--unchanged-exit-77", "vim-enhanced"]]


def test_overrides_and_installs_share_one_transaction():
    plan = plan_layering(
        PLAIN,
        ["htop"],
        "present",
        override_remove=["firefox", "firefox-langpacks"],
        override_replace_nevras={"/tmp/k.rpm": "kernel-core-2:6.11.7-300.fc41.x86_64"},
    )
    assert commands(plan) == [
        ["override", "remove", "firefox", "firefox-langpacks", "--replace=/tmp/k.rpm", "--install=htop"],
    ]
    assert plan["after"]["requested_base_local_replacements"] == ["kernel-core-2:6.11.7-300.fc41.x86_64"]


def test_reset_is_its_own_transaction_and_carries_the_package_changes():
    plan = plan_layering(
        STAGED, ["htop", "vim-enhanced", "zsh", LOCAL], "present", local_nevras={LOCAL: LOCAL_NEVRA}, override_reset=["firefox"]
    )
    assert commands(plan) == [["override", "reset", "firefox", "--install=zsh"]]
    assert plan["after"]["requested_base_removals"] == ["firefox-langpacks"]
    everything = plan_layering(STAGED, [], "present", override_reset=["all"])
    assert commands(everything) == [["override", "reset", "--all"]]
    assert plan_layering(PLAIN, [], "present", override_reset=["all"])["changed"] is False


def test_reset_plus_remove_needs_two_transactions():
    plan = plan_layering(STAGED, [], "present", override_remove=["nano"], override_reset=["firefox"])
    assert commands(plan) == [["override", "remove", "nano"], ["override", "reset", "firefox"]]


def test_inactive_request_and_base_provided_skip():
    doc = json.loads((FIXTURES / "rpm-ostree-status-plain-silverblue.json").read_text())
    doc["deployments"][0]["requested-packages"] = ["nano"]
    merge = rpm_ostree.pick(rpm_ostree.parse_status(doc), "merge")
    assert merge["inactive_requests"] == ["nano"]
    assert plan_layering(merge, ["nano"], "present")["changed"] is False
    skipped = plan_layering(PLAIN, ["bash", "htop"], "present", skip={"bash": "bash-5.2.32-1.fc41.x86_64"})
    assert skipped["install"] == ["htop"] and skipped["skipped"] == {"bash": "bash-5.2.32-1.fc41.x86_64"}


def test_allow_inactive_and_apply_live_flags():
    plan = plan_layering(PLAIN, ["htop"], "present")
    assert commands(plan, allow_inactive=True, apply_live=True) == [
        ["install", "--idempotent", "--unchanged-exit-77", "--allow-inactive", "--apply-live", "--assumeyes", "htop"]
    ]
    assert commands(plan, dry_run=True)[0][-1] == "--dry-run"


def test_container_origin_host_layers_the_same_way():
    merge = merge_of("rpm-ostree-status-container-origin.json")
    plan = plan_layering(merge, ["htop"], "present")
    assert plan["install"] == ["htop"] and plan["before"]["requested_packages"] == []


def test_provided_by_base_message_is_read():
    stderr = 'error: "nano" is already provided by: nano-8.1-1.fc41.x86_64. Use --allow-inactive to explicitly require it.\n'
    assert layering.provided_by_base(stderr) == {"nano": "nano-8.1-1.fc41.x86_64"}
    assert layering.provided_by_base("error: Packages not found: nope") == {}


BAD_NAMES = [
    [""],
    ["   "],
    [None],
    ["htop vim"],
    ["htop;reboot"],
    ["$(reboot)"],
    ["`id`"],
    ["htop|cat"],
    ["htop&"],
    ["a>b"],
    ["'htop'"],
    ['"htop"'],
    ["htop\n"],
    ["htop", "htop"],
    ["-y"],
    ["/tmp/x.src.rpm"],
    ["/tmp/with space.rpm"],
    ["ftp://example.org/x.rpm"],
]


@pytest.mark.parametrize("names", BAD_NAMES)
def test_bad_package_names_are_rejected(names):
    with pytest.raises(InvalidPackage):
        layering.validate_names(names, "name", allow_local=True)


def test_local_rpms_are_refused_where_names_are_expected():
    with pytest.raises(InvalidPackage, match="not local RPMs"):
        layering.validate_names(["/tmp/x.rpm"], "override_remove")
    with pytest.raises(InvalidPackage, match="local RPM paths"):
        layering.validate_local(["kernel"], "override_replace")


def test_reset_and_remove_of_the_same_package_conflict():
    with pytest.raises(InvalidPackage, match="both remove and reset"):
        plan_layering(STAGED, [], "present", override_remove=["firefox"], override_reset=["firefox"])
