# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flatpak sandbox overrides (the unit of ``immutable.hosts.flatpak_override``): the keyfile flatpak writes to
``<installation>/overrides/APP`` (or ``global``) parsed, the options checked against what flatpak knows, the keyfile
planned entry by entry (merge or exact) and written as the installation's owner, by descriptor.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _installation as installation
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import FlatpakError, is_valid_id

# option -> (keyfile key in [Context], negated?)
CONTEXT_LISTS = {
    "shares": ("shared", False),
    "unshares": ("shared", True),
    "sockets": ("sockets", False),
    "nosockets": ("sockets", True),
    "devices": ("devices", False),
    "nodevices": ("devices", True),
    "features": ("features", False),
    "filesystems": ("filesystems", False),
    "nofilesystems": ("filesystems", True),
}
CONTEXT_KEYS = ("shared", "sockets", "devices", "features", "filesystems", "persistent")
BUS_OPTIONS = {"talk_names": ("Session Bus Policy", "talk"), "own_names": ("Session Bus Policy", "own")}
BUS_OPTIONS["system_talk_names"] = ("System Bus Policy", "talk")
OVERRIDE_OPTIONS = tuple(CONTEXT_LISTS) + ("persist", "environment", "unset_environment") + tuple(BUS_OPTIONS)

SHARES = ("network", "ipc")
SOCKETS = (
    "x11",
    "wayland",
    "fallback-x11",
    "pulseaudio",
    "session-bus",
    "system-bus",
    "ssh-auth",
    "pcsc",
    "cups",
    "gpg-agent",
    "inherit-wayland-socket",
)
DEVICES = ("dri", "input", "usb", "kvm", "shm", "all")
FEATURES = ("devel", "multiarch", "bluetooth", "canbus", "per-app-dev-shm")
_FS_MODES = ("ro", "rw", "create")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_BUS_NAME_RE = re.compile(r"^[A-Za-z_\-][A-Za-z0-9_\-]*(\.[A-Za-z_\-][A-Za-z0-9_\-]*)+(\.\*)?\Z")


def _entry_key(entry: str) -> str:
    entry = entry[1:] if entry.startswith("!") else entry
    if entry.rsplit(":", 1)[-1] in _FS_MODES and ":" in entry:
        entry = entry.rsplit(":", 1)[0]
    return entry


def parse_override(text: str) -> dict:
    """An override keyfile (``flatpak override --show`` or <installation>/overrides/APP) into data.

    ``context`` maps each [Context] list to {key: entry} (``home`` -> ``home:ro``, ``x11`` -> ``!x11``);
    ``environment`` and ``unset_environment`` are the variables set and unset; ``session_bus`` and ``system_bus``
    map bus names to talk/own/see/none; ``other`` keeps groups and keys this module does not manage.
    """
    try:
        groups = keyfile.parse(text)
    except keyfile.KeyfileError as exc:
        raise FlatpakError("the override is not a keyfile: %s" % exc) from None
    context = groups.get("Context", {})
    data = {"context": {}, "environment": {}, "unset_environment": [], "session_bus": {}, "system_bus": {}, "other": {}}
    for key in CONTEXT_KEYS:
        entries = [item for item in context.get(key, "").split(";") if item]
        if entries:
            data["context"][key] = {_entry_key(entry): entry for entry in entries}
    unset = [item for item in context.get("unset-environment", "").split(";") if item]
    data["unset_environment"] = sorted(set(unset))
    data["environment"] = {k: v for k, v in groups.get("Environment", {}).items() if k not in unset}
    data["session_bus"] = dict(groups.get("Session Bus Policy", {}))
    data["system_bus"] = dict(groups.get("System Bus Policy", {}))
    for group, values in groups.items():
        if group in ("Environment", "Session Bus Policy", "System Bus Policy"):
            continue
        if group == "Context":
            values = {k: v for k, v in values.items() if k not in CONTEXT_KEYS and k != "unset-environment"}
        if values:
            data["other"][group] = dict(values)
    return data


def render_override(data: dict) -> str:
    """The keyfile flatpak writes for ``data``: unset variables go both to unset-environment and, empty, to
    [Environment], as flatpak itself writes them."""
    context = {}
    for key in CONTEXT_KEYS:
        entries = data["context"].get(key)
        if entries:
            context[key] = "".join(entry + ";" for _key, entry in sorted(entries.items()))
    if data["unset_environment"]:
        context["unset-environment"] = "".join(name + ";" for name in sorted(data["unset_environment"]))
    context.update(data["other"].get("Context", {}))
    groups = {"Context": context}
    groups["Session Bus Policy"] = dict(sorted(data["session_bus"].items()))
    groups["System Bus Policy"] = dict(sorted(data["system_bus"].items()))
    environment = dict(sorted(data["environment"].items()))
    environment.update(dict.fromkeys(sorted(data["unset_environment"]), ""))
    groups["Environment"] = environment
    for group, values in data["other"].items():
        if group != "Context":
            groups[group] = dict(values)
    return keyfile.render(groups)


def _is_empty(data: dict) -> bool:
    return not (
        any(data["context"].values())
        or data["environment"]
        or data["unset_environment"]
        or data["session_bus"]
        or data["system_bus"]
        or any(data["other"].values())
    )


def _validate_list(name: str, values: list, allowed: Optional[tuple] = None) -> list:
    result = []
    for value in values or []:
        if isinstance(value, str):
            check_value(value, "%s entry" % name, FlatpakError)
        if not isinstance(value, str) or not value or ";" in value or "=" in value:
            raise FlatpakError("%s entries are non-empty strings without ; = or control characters, got %r" % (name, value))
        bare = value[1:] if name == "features" and value.startswith("!") else value
        if allowed is not None and bare not in allowed:
            raise FlatpakError("%s: unknown value %r (flatpak knows %s)" % (name, value, ", ".join(allowed)))
        result.append(value)
    return result


def _validate_filesystem(name: str, value: str, negated: bool) -> str:
    if value.startswith("!"):
        raise FlatpakError("%s: %r: write denials in nofilesystems, without '!'" % (name, value))
    path, mode = value.rsplit(":", 1) if ":" in value else (value, "")
    if mode and mode not in _FS_MODES:
        raise FlatpakError("%s: %r: the mode after ':' is ro, rw or create" % (name, value))
    if negated and mode:
        raise FlatpakError("%s: %r takes no :%s mode" % (name, value, mode))
    head = path.split("/")[0]
    known = ("host", "host-os", "host-etc", "home", "host-root") + tuple(
        "xdg-" + d
        for d in (
            "desktop",
            "documents",
            "download",
            "music",
            "pictures",
            "public-share",
            "templates",
            "videos",
            "run",
            "config",
            "cache",
            "data",
        )
    )
    if not (path.startswith(("/", "~/")) or path == "~" or head in known):
        raise FlatpakError(
            "%s: %r is not a filesystem flatpak knows: an absolute path, ~/path, home, host, host-os, host-etc or xdg-*"
            % (name, value)
        )
    return value


def validate_override(params: dict) -> dict:
    """The override options, checked and normalised: {option: list or dict}."""
    allowed = {"shares": SHARES, "unshares": SHARES, "sockets": SOCKETS, "nosockets": SOCKETS, "devices": DEVICES}
    allowed.update({"nodevices": DEVICES, "features": FEATURES})
    result = {}
    for option in CONTEXT_LISTS:
        values = _validate_list(option, params.get(option), allowed.get(option))
        if option in ("filesystems", "nofilesystems"):
            values = [_validate_filesystem(option, value, option == "nofilesystems") for value in values]
        result[option] = values
    for yes, no in (("shares", "unshares"), ("sockets", "nosockets"), ("devices", "nodevices")):
        both = set(result[yes]) & set(result[no])
        if both:
            raise FlatpakError("%s and %s both list %s" % (yes, no, ", ".join(sorted(both))))
    both = {_entry_key(v) for v in result["filesystems"]} & {_entry_key(v) for v in result["nofilesystems"]}
    if both:
        raise FlatpakError("filesystems and nofilesystems both list %s" % ", ".join(sorted(both)))
    persist = _validate_list("persist", params.get("persist"))
    for path in persist:
        if path.startswith("/") or ".." in path.split("/"):
            raise FlatpakError("persist: %r must be a path relative to the home directory, without '..'" % path)
    result["persist"] = persist
    environment = params.get("environment") or {}
    for name, value in environment.items():
        if not _ENV_NAME_RE.match(str(name)):
            raise FlatpakError("environment: %r is not a valid variable name" % (name,))
        if value is None:
            raise FlatpakError("environment: the value of %s must be a string; use unset_environment to unset it" % name)
        check_value(str(value), "environment: the value of %s" % name, FlatpakError)
    result["environment"] = {str(k): str(v) for k, v in environment.items()}
    unset = _validate_list("unset_environment", params.get("unset_environment"))
    for name in unset:
        if not _ENV_NAME_RE.match(name):
            raise FlatpakError("unset_environment: %r is not a valid variable name" % name)
        if name in result["environment"]:
            raise FlatpakError("%s is both set in environment and listed in unset_environment" % name)
    result["unset_environment"] = unset
    for option in BUS_OPTIONS:
        names = _validate_list(option, params.get(option))
        for name in names:
            if not _BUS_NAME_RE.match(name) or len(name) > 255:
                raise FlatpakError("%s: %r is not a D-Bus well-known name (org.example.Name, optionally .*)" % (option, name))
        result[option] = names
    both = set(result["talk_names"]) & set(result["own_names"])
    if both:
        raise FlatpakError("talk_names and own_names both list %s; own implies talk" % ", ".join(sorted(both)))
    return result


def _empty_override() -> dict:
    return {"context": {}, "environment": {}, "unset_environment": [], "session_bus": {}, "system_bus": {}, "other": {}}


def override_view(data: dict) -> dict:
    """Data for the diff: lists of entries, as the user writes them."""
    view = {key: sorted(entries.values()) for key, entries in sorted(data["context"].items()) if entries}
    if data["environment"]:
        view["environment"] = dict(sorted(data["environment"].items()))
    if data["unset_environment"]:
        view["unset_environment"] = sorted(data["unset_environment"])
    if data["session_bus"]:
        view["session_bus"] = dict(sorted(data["session_bus"].items()))
    if data["system_bus"]:
        view["system_bus"] = dict(sorted(data["system_bus"].items()))
    if any(data["other"].values()):
        view["other"] = {group: dict(values) for group, values in data["other"].items() if values}
    return view


def plan_override(current: dict, options: dict, mode: str, state: str) -> dict:
    """From the current override data to the wanted one.

    ``mode=merge`` sets the given entries over the current ones (an entry of the same name is replaced:
    ``home:ro`` replaces ``home``, ``!x11`` replaces ``x11``); ``mode=exact`` makes the override exactly the given
    entries.  ``state=absent`` removes the given entries, or the whole override when none are given.
    Returns ``{"changed", "data", "text", "remove_file", "before", "after"}``.
    """
    given = any(options.get(option) for option in OVERRIDE_OPTIONS)
    if state == "absent":
        wanted = _empty_override() if not given else _without(current, options)
    else:
        wanted = _empty_override() if mode == "exact" else _copy(current)
        for option, (key, negated) in CONTEXT_LISTS.items():
            for value in options.get(option) or []:
                if option == "features" and value.startswith("!"):
                    value, negated_value = value[1:], True
                else:
                    negated_value = negated
                wanted["context"].setdefault(key, {})[_entry_key(value)] = ("!" if negated_value else "") + value
        for path in options.get("persist") or []:
            wanted["context"].setdefault("persistent", {})[path] = path
        for name, value in (options.get("environment") or {}).items():
            wanted["environment"][name] = value
            if name in wanted["unset_environment"]:
                wanted["unset_environment"].remove(name)
        for name in options.get("unset_environment") or []:
            wanted["environment"].pop(name, None)
            if name not in wanted["unset_environment"]:
                wanted["unset_environment"].append(name)
        for option, (group, policy) in BUS_OPTIONS.items():
            bus = wanted["session_bus"] if group == "Session Bus Policy" else wanted["system_bus"]
            for name in options.get(option) or []:
                bus[name] = policy
    wanted["context"] = {key: entries for key, entries in wanted["context"].items() if entries}
    wanted["unset_environment"] = sorted(wanted["unset_environment"])
    before, after = override_view(current), override_view(wanted)
    empty = _is_empty(wanted)
    return {
        "changed": before != after,
        "data": wanted,
        "text": "" if empty else render_override(wanted),
        "remove_file": empty,
        "before": before,
        "after": after,
    }


def _copy(data: dict) -> dict:
    return {
        "context": {key: dict(entries) for key, entries in data["context"].items()},
        "environment": dict(data["environment"]),
        "unset_environment": list(data["unset_environment"]),
        "session_bus": dict(data["session_bus"]),
        "system_bus": dict(data["system_bus"]),
        "other": {group: dict(values) for group, values in data["other"].items()},
    }


def _without(current: dict, options: dict) -> dict:
    wanted = _copy(current)
    for option, (key, _negated) in CONTEXT_LISTS.items():
        for value in options.get(option) or []:
            wanted["context"].get(key, {}).pop(_entry_key(value.lstrip("!")), None)
    for path in options.get("persist") or []:
        wanted["context"].get("persistent", {}).pop(path, None)
    for name in options.get("environment") or {}:
        wanted["environment"].pop(name, None)
    for name in options.get("unset_environment") or []:
        if name in wanted["unset_environment"]:
            wanted["unset_environment"].remove(name)
    for option, (group, _policy) in BUS_OPTIONS.items():
        bus = wanted["session_bus"] if group == "Session Bus Policy" else wanted["system_bus"]
        for name in options.get(option) or []:
            bus.pop(name, None)
    return wanted


# --- the unit -------------------------------------------------------------------------------------------------------------

LIST_OPTIONS = (
    "filesystems",
    "nofilesystems",
    "sockets",
    "nosockets",
    "devices",
    "nodevices",
    "shares",
    "unshares",
    "features",
    "unset_environment",
    "talk_names",
    "own_names",
    "system_talk_names",
    "persist",
)
ARGUMENT_SPEC = dict(
    app=dict(type="str"),
    mode=dict(type="str", choices=["merge", "exact"], default="merge"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    environment=dict(type="dict", default={}),
    **{"global": dict(type="bool", default=False)},
    **{option: dict(type="list", elements="str", default=[]) for option in LIST_OPTIONS},
    **installation.COMMON_ARGUMENT_SPEC,
)


class OverrideUnit:
    """``immutable.hosts.flatpak_override``: the override of one app (or the global one) in one installation."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        place = installation.choose(params, host)
        app = params["app"]
        if params["global"] and app:
            raise FlatpakError("app and global=true exclude each other")
        if not params["global"] and not app:
            raise FlatpakError("give app (an application ID) or global=true")
        if app is not None and not is_valid_id(app):
            raise FlatpakError("app %r is not a valid flatpak application ID" % app)
        options = validate_override(params)
        given = any(options[option] for option in OVERRIDE_OPTIONS)
        if params["state"] == "present" and params["mode"] == "merge" and not given:
            raise FlatpakError("state=present with mode=merge needs at least one entry (or use state=absent to reset)")
        if params["state"] == "absent" and params["mode"] == "exact":
            raise FlatpakError("mode=exact applies to state=present; state=absent removes the given entries or everything")
        return {"place": place, "name": app or "global", "options": options, "mode": params["mode"], "state": params["state"]}

    def read(self, host, desired: dict) -> tuple:
        where = installation.Installation(host, desired["place"])
        path = os.path.join(where.directory(), "overrides", desired["name"])
        directory = where.open_directory("overrides")
        if directory is None:
            return path, ""
        with directory:
            return path, directory.read_text(desired["name"]) or ""

    def plan(self, current: tuple, desired: dict) -> Plan:
        path, text = current
        planned = plan_override(parse_override(text), desired["options"], desired["mode"], desired["state"])
        return Plan(
            changed=planned["changed"],
            diff={"before": planned["before"], "after": planned["after"]},
            actions=planned,
            result={"path": path, "override": planned["after"]},
        )

    def apply(self, host, plan: Plan, desired: dict) -> None:
        where = installation.Installation(host, desired["place"])
        remove = plan.actions["remove_file"]
        directory = where.open_directory("overrides", create=not remove)
        if directory is None:
            return
        with directory:
            if remove:
                directory.remove(desired["name"])
            else:
                directory.write(desired["name"], plan.actions["text"], 0o644)


UNIT = OverrideUnit()
