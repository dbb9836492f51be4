"""Kernel argument planning: present, absent, exact, and input validation."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree._admin import split_kargs
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._kargs import InvalidKarg, plan_kargs

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
        # ostree splits --replace=KEY=OLD=NEW at the first "=" of the value, so an old value with "=" is deleted
        # and the new one appended, in the same call.
        (
            ["root=UUID=aaaa"],
            "present",
            ["--delete-if-present=root=UUID=6f3b", "--append-if-missing=root=UUID=aaaa"],
            ["rw", "rhgb", "quiet", "root=UUID=aaaa"],
        ),
        (
            ["rhgb=1"],
            "present",
            ["--delete-if-present=rhgb", "--append-if-missing=rhgb=1"],
            ["root=UUID=6f3b", "rw", "quiet", "rhgb=1"],
        ),
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


def test_the_kernel_quoting_rules_decide_what_is_one_argument():
    """Only double quotes group; single quotes and backslashes are ordinary characters (lib/cmdline.c)."""
    line = """root=UUID=6f3b rw dyndbg="file drm* +p" note=it's path=C:\\x 'a b'"""
    current = split_kargs(line)
    assert current == ["root=UUID=6f3b", "rw", 'dyndbg="file drm* +p"', "note=it's", "path=C:\\x", "'a", "b'"]
    wanted = ['dyndbg="file drm* +p"', "note=it's", "path=C:\\x"]
    assert plan_kargs(current, wanted, "present")["changed"] is False
    first = plan_kargs(["rw"], wanted, "present")
    assert first["argv"] == ["--append-if-missing=" + arg for arg in wanted]
    assert plan_kargs(first["after"], wanted, "present")["changed"] is False


def test_replacing_a_value_that_holds_an_equals_sign_converges_on_the_contract():
    """root=UUID=1111 -> root=UUID=2222 with rpm-ostree's own splitting, applied twice."""
    plan = plan_kargs(["root=UUID=1111", "rw"], ["root=UUID=2222"], "present")
    assert plan["argv"] == ["--delete-if-present=root=UUID=1111", "--append-if-missing=root=UUID=2222"]
    assert plan["after"] == ["rw", "root=UUID=2222"]
    assert plan_kargs(plan["after"], ["root=UUID=2222"], "present")["changed"] is False
    simple = plan_kargs(["mitigations=auto", "rw"], ["mitigations=off,nosmt"], "present")
    assert simple["argv"] == ["--replace=mitigations=auto=off,nosmt"] and simple["after"] == ["mitigations=off,nosmt", "rw"]


BAD = [
    ["foo='a b'"],
    ['foo="a b'],
    ["a\u2028b"],
    ["a\x85b"],
    ["a\x0bb"],
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
