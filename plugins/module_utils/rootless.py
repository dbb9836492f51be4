# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rootless users: subordinate id ranges (/etc/subuid, /etc/subgid), linger, and the plan that gives a user what
rootless Podman needs without ever duplicating or overlapping a range.

An entry names its owner by login name or by numeric uid; both count as the user's.  New ranges go in the lowest
free gap at or above SUB_UID_MIN (login.defs), below SUB_UID_MAX.  Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value, split_lines

DEFAULT_COUNT = 65536
# shadow's defaults when /etc/login.defs says nothing (useradd(8), login.defs(5)).
DEFAULT_LIMITS = {"min": 100000, "max": 600100000}
MAX_ID = 4294967294  # 2^32 - 2: (uid_t) -1 is reserved
LINGER_DIR = "/var/lib/systemd/linger"

_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.\-]*\$?\Z")
_ENTRY_RE = re.compile(r"^(?P<owner>[^:\s]+):(?P<start>\d+):(?P<count>\d+)\Z")


class InvalidRootless(ValueError):
    pass


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


def parse_loginctl_linger(text: str) -> Optional[bool]:
    """``loginctl show-user NAME --property=Linger`` (or the full show-user output) → the Linger value."""
    for line in split_lines(text):
        if line.startswith("Linger="):
            return line.split("=", 1)[1].strip() == "yes"
    return None


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


def user_systemctl_argv(name: str, uid: int, args: list, same_user: bool) -> list:
    """``systemctl --user`` for another user's manager, from a process without that user's login session.

    As the user itself, plain ``systemctl --user`` (the caller passes XDG_RUNTIME_DIR in the environment).  As root,
    ``runuser`` to the user with XDG_RUNTIME_DIR and the bus address set: systemctl then reaches the manager through
    ``$XDG_RUNTIME_DIR/systemd/private``, which needs neither a PAM session, nor a D-Bus session bus, nor machined.
    """
    if same_user:
        return ["systemctl", "--user"] + list(args)
    directory = runtime_dir(uid)
    return [
        "runuser",
        "-u",
        name,
        "--",
        "env",
        "XDG_RUNTIME_DIR=" + directory,
        "DBUS_SESSION_BUS_ADDRESS=unix:path=%s/bus" % directory,
        "systemctl",
        "--user",
    ] + list(args)


def user_environment(uid: int) -> dict:
    directory = runtime_dir(uid)
    return {"XDG_RUNTIME_DIR": directory, "DBUS_SESSION_BUS_ADDRESS": "unix:path=%s/bus" % directory}


# --- linger and paths ---------------------------------------------------------------------------------------------


def linger_path(name: str, linger_dir: str = LINGER_DIR) -> str:
    return "%s/%s" % (linger_dir.rstrip("/"), name)


def plan_linger(current: bool, wanted: Optional[bool]) -> Optional[str]:
    """``enable-linger``, ``disable-linger`` or None."""
    if wanted is None or wanted == current:
        return None
    return "enable-linger" if wanted else "disable-linger"


def runtime_dir(uid: int) -> str:
    return "/run/user/%d" % uid


def quadlet_dir(home: str) -> str:
    return "%s/.config/containers/systemd" % home.rstrip("/")
