"""Kernel argument planning: present, absent, exact, and input validation."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.kargs import InvalidKarg, plan_kargs

BASE = ["root=UUID=6f3b", "rw", "rhgb", "quiet", "ostree=/ostree/boot.1/fedora/abc/0"]


@pytest.mark.parametrize(
    ("args", "state", "argv", "after"),
    [
        (["quiet"], "present", [], ["root=UUID=6f3b", "rw", "rhgb", "quiet"]),
        (
            ["mitigations=off"],
            "present",
            ["--append-if-missing=mitigations=off"],
            ["root=UUID=6f3b", "rw", "rhgb", "quiet", "mitigations=off"],
        ),
        (["root=UUID=aaaa"], "present", ["--replace=root=UUID=6f3b=UUID=aaaa"], ["root=UUID=aaaa", "rw", "rhgb", "quiet"]),
        (["quiet", "rhgb"], "absent", ["--delete-if-present=quiet", "--delete-if-present=rhgb"], ["root=UUID=6f3b", "rw"]),
        (["root"], "absent", ["--delete-if-present=root=UUID=6f3b"], ["rw", "rhgb", "quiet"]),
        (["root=UUID=other"], "absent", [], ["root=UUID=6f3b", "rw", "rhgb", "quiet"]),
        (["nosmt"], "absent", [], ["root=UUID=6f3b", "rw", "rhgb", "quiet"]),
        (["root=UUID=6f3b", "rw"], "exact", ["--delete-if-present=rhgb", "--delete-if-present=quiet"], ["root=UUID=6f3b", "rw"]),
        (["root=UUID=6f3b", "rw", "rhgb", "quiet"], "exact", [], ["root=UUID=6f3b", "rw", "rhgb", "quiet"]),
        (
            ["root=UUID=6f3b", "ro", "nosmt"],
            "exact",
            [
                "--delete-if-present=rw",
                "--delete-if-present=rhgb",
                "--delete-if-present=quiet",
                "--append-if-missing=ro",
                "--append-if-missing=nosmt",
            ],
            ["root=UUID=6f3b", "ro", "nosmt"],
        ),
    ],
)
def test_plans(args, state, argv, after):
    plan = plan_kargs(BASE, args, state)
    assert plan["argv"] == argv
    assert sorted(plan["after"]) == sorted(after)
    assert plan["changed"] is bool(argv)
    assert all("ostree=" not in arg for arg in plan["before"] + plan["after"] + argv)


def test_key_with_several_values_is_not_replaced_but_rewritten():
    current = ["console=tty0", "console=ttyS0,115200", "rw"]
    plan = plan_kargs(current, ["console=ttyS1"], "present")
    assert plan["replace"] == []
    assert plan["delete"] == ["console=tty0", "console=ttyS0,115200"] and plan["append"] == ["console=ttyS1"]
    both = plan_kargs(current, ["console=tty0", "console=ttyS0,115200"], "present")
    assert both["changed"] is False


def test_present_with_two_values_for_one_key_keeps_both():
    plan = plan_kargs(["rw"], ["console=tty0", "console=ttyS0"], "present")
    assert plan["append"] == ["console=tty0", "console=ttyS0"] and plan["after"] == ["rw", "console=tty0", "console=ttyS0"]


def test_second_run_after_applying_is_converged():
    first = plan_kargs(BASE, ["mitigations=off", "root=UUID=aaaa"], "present")
    second = plan_kargs(first["after"], ["mitigations=off", "root=UUID=aaaa"], "present")
    assert first["changed"] and not second["changed"]


BAD = [
    [""],
    [None],
    [5],
    ["quiet\n"],
    ["a\x00b"],
    ["a\tb"],
    ["two words"],
    ["ostree=/ostree/boot.1/x"],
    ["ostree"],
    ["=value"],
    ["-rf"],
    ["$(reboot)"],
    ["key;rm=1"],
    ["quiet", "quiet"],
    ["\x1b[31m"],
    ["a\rb"],
]


@pytest.mark.parametrize("args", BAD)
def test_bad_input_is_rejected(args):
    with pytest.raises(InvalidKarg):
        plan_kargs(BASE, args, "present")


def test_unknown_state_is_rejected():
    with pytest.raises(InvalidKarg, match="state"):
        plan_kargs(BASE, ["quiet"], "sometimes")
