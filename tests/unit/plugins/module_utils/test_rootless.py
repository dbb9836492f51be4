"""Subordinate id ranges, linger, and the argv that reaches a user's systemd instance."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.podman import _instance as instance
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _rootless as rootless

SUBUID = "# managed by hand\nalice:100000:65536\n1001:165536:65536\n\ncarol:300000:65536\n"


def entries(text=SUBUID):
    return rootless.parse_subid(text)


def test_parse_subid_skips_comments_and_keeps_owner_as_written():
    assert [(e["owner"], e["start"], e["count"]) for e in entries()] == [
        ("alice", 100000, 65536),
        ("1001", 165536, 65536),
        ("carol", 300000, 65536),
    ]


@pytest.mark.parametrize("line", ["alice:100000", "alice:x:65536", "alice:100000:65536:1", "al ice:1:2"])
def test_parse_subid_refuses_malformed_lines(line):
    with pytest.raises(rootless.InvalidRootless, match="line 1"):
        rootless.parse_subid(line + "\n")


@pytest.mark.parametrize(
    "text, count, minimum, start",
    [
        ("", 65536, 100000, 100000),  # empty file: the minimum
        (SUBUID, 65536, 100000, 231072),  # alice and uid 1001 back to back: right after them
        (SUBUID, 68928, 100000, 231072),  # exactly fills the gap up to carol
        (SUBUID, 68929, 100000, 365536),  # one too many for the gap: after carol
        ("x:0:50000\n", 65536, 100000, 100000),  # ranges below the minimum do not matter
        ("x:90000:20000\n", 65536, 100000, 110000),  # a range straddling the minimum pushes the start up
        ("x:100000:0\n", 65536, 100000, 100000),  # an empty range takes no ids
        ("a:100000:10\nb:100005:100\n", 10, 100000, 100105),  # overlapping entries: after the farthest end
        ("a:200000:10\n", 100000, 100000, 100000),  # a gap below an entry fits exactly
        ("a:200000:10\n", 100001, 100000, 200010),  # one id more does not fit below it
    ],
)
def test_find_free_range(text, count, minimum, start):
    assert rootless.find_free_range(rootless.parse_subid(text), count, minimum, 600100000) == start


def test_find_free_range_respects_the_maximum():
    with pytest.raises(rootless.InvalidRootless, match="no free range of 65536"):
        rootless.find_free_range(entries(), 65536, 100000, 200000)
    assert rootless.find_free_range([], 100001, 100000, 200000) == 100000


def test_overlaps_between_owners_are_reported():
    found = rootless.overlaps(rootless.parse_subid("a:100000:65536\nb:150000:65536\nc:300000:10\n"))
    assert [(x["owner"], y["owner"]) for x, y in found] == [("a", "b")]
    assert rootless.overlaps(entries()) == []


def test_existing_entry_by_name_is_enough():
    plan = rootless.plan_subids(entries(), "alice", 1000, 65536, "present")
    assert plan["changed"] is False and plan["after"] == [{"start": 100000, "count": 65536}]


def test_existing_entry_by_uid_is_enough():
    plan = rootless.plan_subids(entries(), "bob", 1001, 65536, "present")
    assert plan["changed"] is False and plan["before"] == [{"start": 165536, "count": 65536}]


def test_uid_entry_does_not_count_without_the_uid():
    plan = rootless.plan_subids(entries(), "bob", None, 65536, "present")
    assert plan["add"] == [{"start": 231072, "count": 65536}]


def test_a_short_range_gets_the_missing_amount_only():
    plan = rootless.plan_subids(entries(), "alice", 1000, 131072, "present")
    assert plan["add"] == [{"start": 231072, "count": 65536}]
    assert plan["after"] == [{"start": 100000, "count": 65536}, {"start": 231072, "count": 65536}]


def test_new_user_gets_a_range_in_the_first_gap():
    plan = rootless.plan_subids(entries(), "dave", 1003, 65536, "present", {"min": 100000, "max": 600100000})
    assert plan["changed"] is True and plan["add"] == [{"start": 231072, "count": 65536}]


def test_absent_removes_by_name_and_by_uid():
    text = "bob:400000:10\n1001:165536:65536\nalice:100000:65536\n"
    plan = rootless.plan_subids(rootless.parse_subid(text), "bob", 1001, 65536, "absent")
    assert plan["changed"] is True and plan["after"] == [] and len(plan["remove"]) == 2
    assert rootless.edit_subid(text, "bob", 1001, plan) == "alice:100000:65536\n"


def test_absent_without_entries_changes_nothing():
    plan = rootless.plan_subids(entries(), "zed", 1009, 65536, "absent")
    assert plan["changed"] is False


def test_edit_appends_once_and_keeps_comments():
    plan = rootless.plan_subids(entries(), "dave", 1003, 65536, "present")
    after = rootless.edit_subid(SUBUID, "dave", 1003, plan)
    assert after == SUBUID + "dave:231072:65536\n"
    assert rootless.edit_subid(after, "dave", 1003, plan).count("dave:") == 1
    assert rootless.edit_subid(None, "dave", 1003, plan) == "dave:231072:65536\n"


def test_usermod_args_use_inclusive_ranges():
    uid_plan = rootless.plan_subids([], "dave", 1003, 65536, "present")
    gid_plan = rootless.plan_subids(rootless.parse_subid("x:100000:65536\n"), "dave", 1003, 65536, "present")
    assert rootless.usermod_args(uid_plan, gid_plan) == ["--add-subuids", "100000-165535", "--add-subgids", "165536-231071"]
    nothing = rootless.plan_subids(entries(), "alice", 1000, 65536, "present")
    assert rootless.usermod_args(nothing, nothing) == []


def test_login_defs_limits():
    limits = rootless.parse_login_defs("# SUB_UID_MIN 1\nSUB_UID_MIN\t\t  200000\nSUB_UID_MAX 300000\nSUB_GID_COUNT 65536\n")
    assert limits == {"uid": {"min": 200000, "max": 300000}, "gid": {"min": 100000, "max": 600100000}}
    assert rootless.parse_login_defs(None)["uid"] == {"min": 100000, "max": 600100000}


def test_plan_linger():
    assert rootless.plan_linger(False, True) == "enable-linger"
    assert rootless.plan_linger(True, False) == "disable-linger"
    assert rootless.plan_linger(True, True) is None and rootless.plan_linger(False, None) is None
    assert instance.linger_path("core") == "/var/lib/systemd/linger/core"


def test_root_reaches_a_users_manager_without_a_session():
    assert instance.as_user_argv("core", 1000, ["systemctl", "--user", "daemon-reload"]) == [
        "runuser",
        "-u",
        "core",
        "--",
        "env",
        "XDG_RUNTIME_DIR=/run/user/1000",
        "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
        "systemctl",
        "--user",
        "daemon-reload",
    ]
    assert instance.user_environment(1000)["XDG_RUNTIME_DIR"] == "/run/user/1000"


def test_paths():
    assert instance.runtime_dir(1000) == "/run/user/1000"
    assert instance.quadlet_dir("/var/home/core/") == "/var/home/core/.config/containers/systemd"


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "required"),
        ("root", "root runs rootful"),
        ("Bad", "not a valid login name"),
        ("a b", "not a valid login name"),
        ("../x", "may not contain"),
        ("a:b", "may not contain"),
        ("a\nb", "control character"),
        ("x" * 33, "a login name has at most 32"),
        ("1abc", "not a valid login name"),
        (None, "required"),
    ],
)
def test_bad_names(name, message):
    with pytest.raises(rootless.InvalidRootless, match=message):
        rootless.validate_name(name)


@pytest.mark.parametrize("count", [0, -1, 2**32, True, "65536"])
def test_bad_counts(count):
    with pytest.raises(rootless.InvalidRootless):
        rootless.validate_count("subuid_count", count)
