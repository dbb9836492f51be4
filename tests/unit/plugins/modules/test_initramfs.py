"""immutable.hosts.initramfs: the planner on the deployment's fields, and the module against rpm-ostree answering from
the contract's documents (with the origin keys rpm-ostree shows once initramfs regeneration is in use)."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree._initramfs import plan_initramfs
from ansible_collections.immutable.hosts.plugins.modules import initramfs
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, fixture_text, make_sysroot

PLAIN = "rpm-ostree-status-plain-silverblue.json"
BOOTED = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
ROLLBACK = "7a22d0feb18d647d7b3598b1ac006c1d27d1202303fe7118628bc4b8e2ecb74f"
STATUS = "rpm-ostree status --json"
OFF = {"regenerate_initramfs": False, "initramfs_args": None, "initramfs_etc": None}
ON = {"regenerate_initramfs": True, "initramfs_args": ["--add=tpm2-tss"], "initramfs_etc": ["/etc/crypttab"]}


@pytest.fixture
def host(tmp_path):
    make_sysroot(tmp_path, [(BOOTED, 0, "root=UUID=6f3b rw rhgb quiet"), (ROLLBACK, 0, "root=UUID=6f3b rw")])
    return tmp_path


def status(regenerate: bool, args: list, etc: list, staged: bool = False) -> str:
    """The plain Silverblue document with the keys rpm-ostree adds once the origin has initramfs settings."""
    doc = json.loads(fixture_text(PLAIN))
    first = doc["deployments"][0]
    if staged:
        first = copy.deepcopy(first)
        first.update({"booted": False, "staged": True, "serial": 1, "id": first["id"][:-1] + "1"})
        doc["deployments"].insert(0, first)
    first.update({"regenerate-initramfs": regenerate, "initramfs-args": args, "initramfs-etc": etc})
    return json.dumps(doc)


@pytest.mark.parametrize(
    "current, regenerate, args, etc, exact, calls",
    [
        (OFF, True, ["--add=tpm2-tss"], None, False, [["initramfs", "--enable", "--arg=--add=tpm2-tss"]]),
        (OFF, None, ["--add=fido2"], None, False, [["initramfs", "--enable", "--arg=--add=fido2"]]),
        (ON, True, ["--add=tpm2-tss"], ["/etc/crypttab"], False, []),
        (ON, None, None, ["/etc/vconsole.conf"], False, [["initramfs-etc", "--unchanged-exit-77", "--track=/etc/vconsole.conf"]]),
        (ON, None, None, ["/etc/vconsole.conf"], True, [
            ["initramfs-etc", "--unchanged-exit-77", "--track=/etc/vconsole.conf", "--untrack=/etc/crypttab"]
        ]),
        (ON, True, ["--add=fido2"], None, False, [["initramfs", "--enable", "--arg=--add=fido2"]]),
        (ON, True, [], None, False, [["initramfs", "--disable"], ["initramfs", "--enable"]]),
        (ON, False, None, [], True, [["initramfs", "--disable"], ["initramfs-etc", "--unchanged-exit-77", "--untrack=/etc/crypttab"]]),
        (OFF, False, None, None, False, []),
        ({**OFF, "initramfs_args": ["--stale"]}, False, None, None, False, []),
    ],
)  # fmt: skip
def test_plan_calls_rpm_ostree_only_for_a_real_change(current, regenerate, args, etc, exact, calls):
    found = plan_initramfs(current, regenerate, args, etc, exact)
    assert found["calls"] == calls and found["changed"] is bool(calls)


def test_converged_host_reads_status_only(host, ostree_module):
    tools = Tools({STATUS: (0, status(True, ["--add=tpm2-tss"], ["/etc/crypttab"]), "")})
    result = ostree_module(initramfs, {"regenerate": True, "args": ["--add=tpm2-tss"], "etc": ["/etc/crypttab"]}, tools)
    assert result["changed"] is False and tools.calls == [STATUS] and result["reboot_required"] is False


def test_change_is_two_calls_stacked_and_check_mode_predicts_them(host, ostree_module):
    args = {"regenerate": True, "args": ["--add=tpm2-tss"], "etc": ["/etc/crypttab"]}
    checked = Tools({STATUS: (0, status(False, [], []), "")})
    predicted = ostree_module(initramfs, {**args, "_ansible_check_mode": True}, checked)
    assert predicted["changed"] is True and checked.calls == [STATUS]  # read once, even for the report
    assert "layering-changed" in predicted["reboot_reasons"]
    enable = "rpm-ostree initramfs --enable --arg=--add=tpm2-tss"
    track = "rpm-ostree initramfs-etc --unchanged-exit-77 --track=/etc/crypttab"
    tools = Tools(
        {
            STATUS: [(0, status(False, [], []), ""), (0, status(True, ["--add=tpm2-tss"], [], staged=True), ""),
                     (0, status(True, ["--add=tpm2-tss"], ["/etc/crypttab"], staged=True), "")],
            enable: (0, "Initramfs regeneration is now: enabled\n", ""),
            track: (0, 'Staging deployment...done\nRun "systemctl reboot" to start a reboot\n', ""),
        }
    )  # fmt: skip
    result = ostree_module(initramfs, args, tools)
    assert result["changed"] is True and [c for c in tools.calls if c != STATUS] == [enable, track]
    assert result["diff"] == {
        "before": {"regenerate": False, "args": [], "etc": []},
        "after": {"regenerate": True, "args": ["--add=tpm2-tss"], "etc": ["/etc/crypttab"]},
    }
    assert result["reboot_required"] is True and result["initramfs"]["etc"] == ["/etc/crypttab"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "one of the following is required"),
        ({"etc": ["crypttab"]}, "absolute and normalised"),
        ({"etc": ["/etc/../root/.ssh/id"]}, "absolute and normalised"),
        ({"etc": ["/var/lib/x"]}, "outside /etc"),
        ({"etc": ["/etc/a,b"]}, "comma"),
        ({"etc": ["/etc/x\u2029"]}, "U+2029"),
        ({"args": ["--add tpm2-tss"]}, "without blanks"),
        ({"regenerate": False, "args": ["--add=x"]}, "need regenerate=true"),
        ({"regenerate": True, "etc_exact": True}, "give etc"),
    ],
)
def test_bad_input_runs_nothing(host, ostree_module, args, message):
    tools = Tools({STATUS: (0, status(False, [], []), "")})
    result = ostree_module(initramfs, args, tools)
    assert result["failed"] is True and message in result["msg"] and tools.calls == []
