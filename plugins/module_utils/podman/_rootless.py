# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rootless users (the unit of ``immutable.hosts.rootless_user``): subordinate id ranges (/etc/subuid, /etc/subgid),
linger, and the plan that gives a user what rootless Podman needs without ever duplicating or overlapping a range.

An entry names its owner by login name or by numeric uid; both count as the user's.  New ranges go in the lowest
free gap at or above SUB_UID_MIN (login.defs), below SUB_UID_MAX.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value, split_lines
from ansible_collections.immutable.hosts.plugins.module_utils.podman._instance import linger_path, quadlet_dir, runtime_dir

DEFAULT_COUNT = 65536
# shadow's defaults when /etc/login.defs says nothing (useradd(8), login.defs(5)).
DEFAULT_LIMITS = {"min": 100000, "max": 600100000}
MAX_ID = 4294967294  # 2^32 - 2: (uid_t) -1 is reserved
SUBID_FILES = {"uid": "/etc/subuid", "gid": "/etc/subgid"}
LOGIN_DEFS = "/etc/login.defs"

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.\-]*\$?\Z")
_ENTRY_RE = re.compile(r"^(?P<owner>[^:\s]+):(?P<start>\d+):(?P<count>\d+)\Z")


class InvalidRootless(HostsError, ValueError):
    """A user, a count or a subordinate id file the unit cannot work with."""


def validate_name(name) -> str:
    """A login name as shadow's useradd accepts it by default (lower case, at most 32 characters)."""
    if not isinstance(name, str) or not name:
        raise InvalidRootless("name is required: the login name of the user")
    if len(name) > 32:
        raise InvalidRootless("name %s... is %d characters long; a login name has at most 32" % (name[:32], len(name)))
    check_value(name, "name", InvalidRootless)
    if "/" in name or ":" in name or name in (".", ".."):
        raise InvalidRootless("name %r may not contain '/' or ':'" % name)
    if not _NAME_RE.match(name) or len(name) > 32:
        raise InvalidRootless(
            "name %r is not a valid login name: lower-case letters, digits, '_', '.', '-', starting with a letter "
            "or '_', at most 32 characters" % name
        )
    if name == "root":
        raise InvalidRootless("root runs rootful containers and needs no subordinate ids or linger")
    return name


def validate_count(option: str, count) -> int:
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidRootless("%s must be a whole number, got %r" % (option, count))
    if count < 1 or count > MAX_ID:
        raise InvalidRootless("%s must be between 1 and %d, got %d" % (option, MAX_ID, count))
    return count


# --- parsing ----------------------------------------------------------------------------------------------------


def parse_subid(text: Optional[str]) -> list:
    """/etc/subuid or /etc/subgid as ``[{"owner", "start", "count", "line"}]``; comments and blank lines are skipped,
    a malformed line raises (shadow would refuse it too)."""
    entries = []
    for number, raw in enumerate(split_lines(text), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENTRY_RE.match(line)
        if not match:
            raise InvalidRootless("line %d is not NAME:START:COUNT: %r" % (number, raw))
        entries.append(
            {
                "owner": match.group("owner"),
                "start": int(match.group("start")),
                "count": int(match.group("count")),
                "line": number,
            }
        )
    return entries


def parse_login_defs(text: Optional[str]) -> dict:
    """SUB_UID_MIN/MAX and SUB_GID_MIN/MAX from /etc/login.defs, as ``{"uid": {"min", "max"}, "gid": {...}}``."""
    values = {}
    for raw in split_lines(text):
        parts = raw.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return {
        kind: {
            "min": values.get("SUB_%s_MIN" % kind.upper(), DEFAULT_LIMITS["min"]),
            "max": values.get("SUB_%s_MAX" % kind.upper(), DEFAULT_LIMITS["max"]),
        }
        for kind in ("uid", "gid")
    }


# --- ranges -------------------------------------------------------------------------------------------------------


def owned_by(entries: list, name: str, uid: Optional[int]) -> list:
    """The entries of one user: by login name or by numeric uid."""
    owners = {name} | ({str(uid)} if uid is not None else set())
    return [entry for entry in entries if entry["owner"] in owners]


def find_free_range(entries: list, count: int, minimum: int = DEFAULT_LIMITS["min"], maximum: int = DEFAULT_LIMITS["max"]) -> int:
    """The lowest start >= ``minimum`` where ``count`` ids overlap no entry (of anyone) and end at or below ``maximum``."""
    start = minimum
    for entry in sorted(entries, key=lambda item: (item["start"], item["count"])):
        end = entry["start"] + entry["count"]
        if entry["count"] == 0 or end <= start:
            continue
        if entry["start"] >= start + count:
            break
        start = end
    if start + count - 1 > maximum:
        raise InvalidRootless(
            "no free range of %d subordinate ids between %d and %d; raise SUB_UID_MAX/SUB_GID_MAX in /etc/login.defs "
            "or free some ranges" % (count, minimum, maximum)
        )
    return start


def overlaps(entries: list) -> list:
    """Pairs of entries of different owners whose ranges overlap (shadow allows it; newuidmap then misbehaves)."""
    found = []
    ordered = sorted(entries, key=lambda item: item["start"])
    for index, entry in enumerate(ordered):
        for other in ordered[index + 1 :]:
            if other["start"] >= entry["start"] + entry["count"]:
                break
            if other["owner"] != entry["owner"] and other["count"] and entry["count"]:
                found.append((entry, other))
    return found


def plan_subids(entries: list, name: str, uid: Optional[int], count: int, state: str, limits: Optional[dict] = None) -> dict:
    """Plan one file (subuid or subgid) for one user.

    present: the user's entries together hold at least ``count`` ids, else one new range of the missing amount is
    added in the lowest free gap; an existing entry is never repeated.  absent: every entry of the user goes.
    Returns ``{"changed", "before", "after", "add", "remove"}``; ranges are ``{"start", "count"}``.
    """
    limits = limits or DEFAULT_LIMITS
    mine = owned_by(entries, name, uid)
    before = [{"start": entry["start"], "count": entry["count"]} for entry in mine]
    add, remove = [], []
    if state == "present":
        have = sum(entry["count"] for entry in mine)
        if have < count:
            start = find_free_range(entries, count - have, limits["min"], limits["max"])
            add.append({"start": start, "count": count - have})
    elif state == "absent":
        remove = [dict(item, owner=entry["owner"]) for item, entry in zip(before, mine)]
    else:
        raise InvalidRootless("state must be present or absent")
    after = [item for item in before if state == "present"] + add
    return {"changed": bool(add or remove), "before": before, "after": after, "add": add, "remove": remove}


def edit_subid(text: Optional[str], name: str, uid: Optional[int], plan: dict) -> str:
    """The file with the plan applied: removed entries' lines dropped, new ranges appended as ``NAME:START:COUNT``."""
    owners = {name} | ({str(uid)} if uid is not None else set())
    lines = []
    for raw in split_lines(text):
        match = _ENTRY_RE.match(raw.strip())
        if plan["remove"] and match and match.group("owner") in owners:
            continue
        lines.append(raw)
    for item in plan["add"]:
        line = "%s:%d:%d" % (name, item["start"], item["count"])
        if line not in lines:
            lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def usermod_args(subuid_plan: dict, subgid_plan: dict) -> list:
    """``usermod`` flags adding the planned ranges (FIRST-LAST, inclusive); empty when nothing is added.

    Removal is a file edit instead: it drops the user's lines whole, by name and by uid, where ``--del-subuids``
    would cut ranges by number.
    """
    args = []
    for flag, plan in (("--add-subuids", subuid_plan), ("--add-subgids", subgid_plan)):
        for item in plan["add"]:
            args += [flag, "%d-%d" % (item["start"], item["start"] + item["count"] - 1)]
    return args


def plan_linger(current: bool, wanted: Optional[bool]) -> Optional[str]:
    """``enable-linger``, ``disable-linger`` or None."""
    if wanted is None or wanted == current:
        return None
    return "enable-linger" if wanted else "disable-linger"


# --- the unit ---------------------------------------------------------------------------------------------------------

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    create=dict(type="bool", default=False),
    subuid_count=dict(type="int", default=DEFAULT_COUNT),
    subgid_count=dict(type="int", default=DEFAULT_COUNT),
    linger=dict(type="bool", default=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def read_subids(host) -> dict:
    """Both files and the limits."""
    texts = {kind: host.read_text(path) for kind, path in SUBID_FILES.items()}
    return {
        "texts": texts,
        "entries": {kind: parse_subid(text) for kind, text in texts.items()},
        "limits": parse_login_defs(host.read_text(LOGIN_DEFS)),
    }


def plan_both(subids: dict, name: str, uid: Optional[int], desired: dict) -> dict:
    entries, limits = subids["entries"], subids["limits"]
    return {
        kind: plan_subids(entries[kind], name, uid, desired["sub%s_count" % kind], desired["state"], limits[kind])
        for kind in ("uid", "gid")
    }


class RootlessUnit:
    """``immutable.hosts.rootless_user``: a user ready for rootless Podman (subordinate ids, linger)."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        name = validate_name(params["name"])
        validate_count("subuid_count", params["subuid_count"])
        validate_count("subgid_count", params["subgid_count"])
        user = host.user(name)
        if user is None and params["state"] == "present" and not params["create"]:
            raise InvalidRootless("user %r does not exist; create it first or set create=true" % name)
        if user is not None and user.pw_uid == 0:
            raise InvalidRootless("%r has uid 0: root runs rootful containers and needs no subordinate ids or linger" % name)
        return dict(params, name=name)

    def read(self, host, desired: dict) -> dict:
        subids = read_subids(host)
        for kind in ("uid", "gid"):
            for first, second in overlaps(subids["entries"][kind]):
                host.warn(
                    "/etc/sub%s: the ranges of %s (%d+%d) and %s (%d+%d) overlap"
                    % (kind, first["owner"], first["start"], first["count"], second["owner"], second["start"], second["count"])
                )
        return {"user": host.user(desired["name"]), "subids": subids, "linger": host.exists(linger_path(desired["name"]))}

    def plan(self, current: dict, desired: dict) -> Plan:
        name, user, state = desired["name"], current["user"], desired["state"]
        uid = user.pw_uid if user else None
        plans = plan_both(current["subids"], name, uid, desired)
        linger_action = plan_linger(current["linger"], desired["linger"] if state == "present" else False)
        if user is None and linger_action == "disable-linger":
            linger_action = None  # nobody to linger for: loginctl would refuse the unknown name
        create = user is None and state == "present"
        before = {"exists": user is not None, "subuid": plans["uid"]["before"], "subgid": plans["gid"]["before"]}
        before["linger"] = current["linger"]
        linger_after = current["linger"] if linger_action is None else linger_action == "enable-linger"
        after = {"exists": user is not None or create, "subuid": plans["uid"]["after"], "subgid": plans["gid"]["after"]}
        after["linger"] = linger_after
        changed = create or plans["uid"]["changed"] or plans["gid"]["changed"] or linger_action is not None
        return Plan(
            changed=changed,
            diff={"before": before, "after": after},
            actions={"create": create, "subids": plans, "linger": linger_action},
            result=dict(result_fields(user), subuid=after["subuid"], subgid=after["subgid"], linger=linger_after, created=create),
        )

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        name, plans = desired["name"], plan.actions["subids"]
        user, subids = None, None
        extra: dict = {}
        if plan.actions["create"]:
            host.run(["useradd", "--create-home", name])
            user = host.user(name)
            if user is None:
                raise HostsError("useradd reported success but user %r cannot be looked up" % name, changed=True)
            subids = read_subids(host)  # useradd may have added ranges of its own
            plans = plan_both(subids, name, user.pw_uid, desired)
            extra = dict(result_fields(user), subuid=plans["uid"]["after"], subgid=plans["gid"]["after"])
            after = dict(plan.diff["after"], subuid=plans["uid"]["after"], subgid=plans["gid"]["after"])
            extra["diff"] = {"before": plan.diff["before"], "after": after}
        else:
            user = host.user(name)
        uid = user.pw_uid if user else None
        adding = usermod_args(plans["uid"], plans["gid"])
        use_usermod = bool(adding) and host.which("usermod") is not None
        if use_usermod:
            host.run(["usermod"] + adding + [name])
        for kind, path in SUBID_FILES.items():
            if plans[kind]["remove"] or (plans[kind]["add"] and not use_usermod):
                text = (subids or read_subids(host))["texts"][kind]
                safe_files.replace_file(host.path(path), edit_subid(text, name, uid, plans[kind]))
        if plan.actions["linger"]:
            host.run(["loginctl", plan.actions["linger"], name])
        return extra


def result_fields(user) -> dict:
    uid = user.pw_uid if user else None
    home = user.pw_dir if user else None
    return {
        "uid": uid,
        "gid": user.pw_gid if user else None,
        "home": home,
        "runtime_dir": runtime_dir(uid) if uid is not None else None,
        "quadlet_dir": quadlet_dir(home) if home else None,
    }


UNIT = RootlessUnit()
