# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flatpak apps and runtimes by exact ref (the unit of ``immutable.hosts.flatpak``): refs parsed as the user writes
them, ``flatpak list`` and ``remote-ls --updates`` parsed as flatpak prints them, the plan (one install for every
missing, outdated and wrong-origin ref, one uninstall), and ``uninstall --unused`` predicted.

State is read with ``--columns=`` listings, never from English messages.  Verified against the outputs of
flatpak 1.14.10 and 1.16.6 under ``tests/unit/fixtures/flatpak``.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import CommandFailed
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _installation as installation
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _remotes as remotes
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import (
    FlatpakError,
    flatpak_arch,
    is_valid_arch,
    is_valid_branch,
    is_valid_id,
    validate_remote_name,
)

LIST_COLUMNS = ("application", "branch", "arch", "origin", "ref", "active", "runtime", "installation", "options")
UPDATE_COLUMNS = ("application", "branch", "arch", "origin", "ref", "commit")
APP_STATES = ("present", "absent", "latest")
KINDS = ("app", "runtime")


# --- refs ---------------------------------------------------------------------------------------------------------------


def parse_ref(spec, default_arch: str) -> dict:
    """A ref the user asks for: ``ID``, ``ID//BRANCH``, ``ID/ARCH/BRANCH`` or ``app|runtime/ID/ARCH/BRANCH``.

    Returns ``{"kind", "id", "arch", "branch", "spec"}``; kind and branch are None when not given (any branch
    matches, flatpak picks the remote's default when installing); arch defaults to ``default_arch``.
    """
    if isinstance(spec, str):
        check_value(spec, "ref", FlatpakError)
    if not isinstance(spec, str) or not spec or " " in spec:
        raise FlatpakError("ref %r is not valid: give ID, ID//BRANCH or app/ID/ARCH/BRANCH" % (spec,))
    if spec.startswith(("http://", "https://", "file://")) or spec.endswith((".flatpakref", ".flatpak")):
        raise FlatpakError("ref %r: .flatpakref URLs and bundles are not refs; give the application ID" % spec)
    parts = spec.split("/")
    kind = None
    if parts[0] in KINDS:
        if len(parts) != 4:
            raise FlatpakError("ref %r is not valid: a full ref is %s/ID/ARCH/BRANCH" % (spec, parts[0]))
        kind, parts = parts[0], parts[1:]
    if len(parts) == 1:
        ident, arch, branch = parts[0], "", ""
    elif len(parts) == 3:
        ident, arch, branch = parts
        if not arch and not branch:
            raise FlatpakError("ref %r is not valid: ID// needs a branch after the //" % spec)
    else:
        raise FlatpakError("ref %r is not valid: give ID, ID//BRANCH, ID/ARCH/BRANCH or app/ID/ARCH/BRANCH" % spec)
    if not is_valid_id(ident):
        raise FlatpakError(
            "%r is not a valid flatpak ID: at least three dot-separated elements of letters, digits and _, "
            "not starting with a digit, '-' only in the last" % ident
        )
    if arch and not is_valid_arch(arch):
        raise FlatpakError("ref %r has an invalid arch %r" % (spec, arch))
    if branch and not is_valid_branch(branch):
        raise FlatpakError("ref %r has an invalid branch %r" % (spec, branch))
    return {"kind": kind, "id": ident, "arch": arch or default_arch, "branch": branch or None, "spec": spec}


def parse_refs(specs: list, default_arch: str) -> list:
    """Every ref the user asks for (``parse_ref``), none twice."""
    wants = [parse_ref(spec, default_arch) for spec in specs]
    keys = [(want["kind"], want["id"], want["arch"], want["branch"]) for want in wants]
    twice = [want["spec"] for index, want in enumerate(wants) if keys[index] in keys[:index]]
    if twice:
        raise FlatpakError("ref %r is listed twice" % twice[0])
    return wants


# --- parsing listings -----------------------------------------------------------------------------------------------


# --- listings -----------------------------------------------------------------------------------------------------------


def parse_list(text: str) -> list:
    """``flatpak list --columns=<LIST_COLUMNS>`` into refs: kind, id, arch, branch, origin, full ref, short commit."""
    refs = []
    for row in installation.rows(text, LIST_COLUMNS):
        options = installation.options(row["options"])
        kind = "runtime" if "runtime" in options else "app"
        parts = row["ref"].split("/")
        if len(parts) != 3:
            raise FlatpakError("unexpected ref %r in flatpak list" % row["ref"])
        runtime = installation.dash(row["runtime"])
        refs.append(
            {
                "kind": kind,
                "id": parts[0],
                "arch": parts[1],
                "branch": parts[2],
                "ref": "%s/%s" % (kind, row["ref"]),
                "origin": row["origin"],
                "commit": row["active"],
                "runtime": "runtime/" + runtime if runtime else None,
                "installation": row["installation"],
                "current": "current" in options,
            }
        )
    return refs


def parse_updates(text: str) -> list:
    """``flatpak remote-ls --updates --columns=<UPDATE_COLUMNS>``: the full refs that have a newer commit."""
    return sorted({row["ref"] for row in installation.rows(text, UPDATE_COLUMNS)})


def pinned_patterns(repo_config_text: str) -> list:
    """Runtimes pinned against ``uninstall --unused`` (``xa.pinned`` in the installation's repo/config)."""
    try:
        core = keyfile.parse(repo_config_text).get("core", {})
    except keyfile.KeyfileError as exc:
        raise FlatpakError("the installation's repo/config is not a keyfile: %s" % exc) from None
    return keyfile.string_list(core.get("xa.pinned"))


def installed_refs(place: installation.Installation) -> list:
    """``flatpak list`` of the installation, once per run."""

    def read() -> list:
        return parse_list(place.run(["list", *place.scope_args, installation.columns_arg(LIST_COLUMNS)]).stdout)

    return place.once("list", read)


# --- apps and runtimes ---------------------------------------------------------------------------------------------------


def matches(want: dict, ref: dict, remote: Optional[str], check_origin: bool = True) -> bool:
    """Exact matching: ID, arch, branch (when given), kind (when given) and origin (when a remote is given)."""
    if want["id"] != ref["id"] or want["arch"] != ref["arch"]:
        return False
    if want["branch"] is not None and want["branch"] != ref["branch"]:
        return False
    if want["kind"] is not None and want["kind"] != ref["kind"]:
        return False
    return not (check_origin and remote is not None and ref["origin"] != remote)


def install_arg(want: dict) -> str:
    if want["kind"] and want["branch"]:
        return "%s/%s/%s/%s" % (want["kind"], want["id"], want["arch"], want["branch"])
    return "%s/%s/%s" % (want["id"], want["arch"], want["branch"] or "")


def plan_apps(
    installed: list,
    wants: list,
    state: str,
    remote: Optional[str],
    exclusive: bool = False,
    updates: Optional[list] = None,
) -> dict:
    """From the installed refs (``parse_list``) to the wanted ones.

    Returns ``{"changed", "install": [args], "update": [full refs], "reinstall": bool, "uninstall": [full refs],
    "before", "after"}``.  A ref installed from another remote does not count as installed: it is reinstalled from
    ``remote`` (``flatpak install --reinstall``), in the same single install call as the missing ones.
    """
    if state not in APP_STATES:
        raise FlatpakError("state must be one of %s" % ", ".join(APP_STATES))
    if state in ("present", "latest") and not remote:
        raise FlatpakError("state=%s needs the remote to install from" % state)
    outdated = set(updates or [])
    install, update, uninstall, reinstall = [], [], [], False
    if state == "absent":
        for ref in installed:
            if any(matches(want, ref, remote) for want in wants) and ref["ref"] not in uninstall:
                uninstall.append(ref["ref"])
    else:
        for want in wants:
            found = [ref for ref in installed if matches(want, ref, remote)]
            if found:
                if state == "latest":
                    update += [ref["ref"] for ref in found if ref["ref"] in outdated and ref["ref"] not in update]
                continue
            if any(matches(want, ref, remote, check_origin=False) for ref in installed):
                reinstall = True
            install.append(install_arg(want))
        if exclusive:
            for ref in installed:
                if ref["kind"] != "app" or ref["ref"] in uninstall:
                    continue
                if not any(matches(want, ref, remote, check_origin=False) for want in wants):
                    uninstall.append(ref["ref"])
    before = {ref["ref"]: ref["origin"] for ref in installed}
    after = {ref: origin for ref, origin in before.items() if ref not in uninstall}
    for want in wants:
        if state != "absent" and install_arg(want) in install:
            for ref in [r for r in installed if matches(want, r, remote, check_origin=False)]:
                if want["branch"] is not None or not any(matches(want, r, remote) for r in installed):
                    after.pop(ref["ref"], None)
            after[install_arg(want)] = remote
    diff_before = {"refs": dict(sorted(before.items()))}
    diff_after = {"refs": dict(sorted(after.items()))}
    if state == "latest":
        diff_before["outdated"] = sorted(r for r in outdated if r in before)
        diff_after["outdated"] = sorted(r for r in outdated if r in after and r not in update)
    return {
        "changed": bool(install or update or uninstall),
        "install": install,
        "update": update,
        "reinstall": reinstall,
        "uninstall": uninstall,
        "before": diff_before,
        "after": diff_after,
    }


def install_argv(plan: dict, remote: str, scope: list, no_related: bool = False) -> Optional[list]:
    """One ``flatpak install`` for every missing, outdated and wrong-origin ref, or None."""
    refs = plan["install"] + plan["update"]
    if not refs:
        return None
    argv = ["install", *scope, "--noninteractive", "-y"]
    argv += ["--no-related"] if no_related else []
    argv += ["--or-update"] if plan["update"] else []
    argv += ["--reinstall"] if plan["reinstall"] else []
    return argv + [remote, *refs]


def uninstall_argv(plan: dict, scope: list, no_related: bool = False) -> Optional[list]:
    if not plan["uninstall"]:
        return None
    argv = ["uninstall", *scope, "--noninteractive", "-y"]
    argv += ["--no-related"] if no_related else []
    return argv + list(plan["uninstall"])


def unused_runtimes(installed_after: list, pinned: list, keep: list) -> list:
    """Runtimes ``flatpak uninstall --unused`` would likely remove: used by no app, not pinned, not an extension
    (``ID.*``) of a ref that stays, not asked for.  An estimate: flatpak decides, this only spares a process."""
    used = {ref["runtime"] for ref in installed_after if ref["kind"] == "app" and ref["runtime"]}
    staying = [ref for ref in installed_after if ref["kind"] == "app" or ref["ref"] in used]
    candidates = []
    for ref in installed_after:
        if ref["kind"] != "runtime" or ref["ref"] in used or ref["ref"] in keep:
            continue
        if any(_pin_matches(pattern, ref["ref"]) for pattern in pinned):
            continue
        if any(ref["id"].startswith(other["id"] + ".") for other in staying):
            continue
        candidates.append(ref["ref"])
    return candidates


def _pin_matches(pattern: str, ref: str) -> bool:
    want, have = pattern.split("/"), ref.split("/")
    if len(want) != len(have):
        return False
    return all(w in ("", "*") or w == h for w, h in zip(want, have))


# --- the unit -----------------------------------------------------------------------------------------------------------

ARGUMENT_SPEC = dict(
    name=dict(type="list", elements="str", required=True),
    remote=dict(type="str"),
    state=dict(type="str", choices=list(APP_STATES), default="present"),
    exclusive=dict(type="bool", default=False),
    arch=dict(type="str"),
    no_related=dict(type="bool", default=False),
    uninstall_unused=dict(type="bool", default=False),
    **installation.COMMON_ARGUMENT_SPEC,
)


class AppsUnit:
    """``immutable.hosts.flatpak``: apps and runtimes of one installation, by exact ref."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        place = installation.choose(params, host)
        arch = params["arch"] or flatpak_arch(host.machine())
        if not is_valid_arch(arch):
            raise FlatpakError("arch %r is not a valid flatpak arch" % arch)
        if not params["name"]:
            raise FlatpakError("name lists at least one ref")
        wants = parse_refs(params["name"], arch)
        if params["remote"] is not None:
            validate_remote_name(params["remote"])
        if params["state"] in ("present", "latest") and not params["remote"]:
            raise FlatpakError("state=%s needs remote, the remote to install from" % params["state"])
        if params["exclusive"] and params["state"] == "absent":
            raise FlatpakError("exclusive applies to state=present or latest")
        return dict(params, place=place, wants=wants)

    def read(self, host, desired: dict) -> dict:
        where = installation.Installation(host, desired["place"])
        where.require_flatpak()
        installed = installed_refs(where)
        remote, wants = desired["remote"], desired["wants"]
        updates = None
        if desired["state"] == "latest" and any(matches(want, ref, remote) for want in wants for ref in installed):
            argv = ["remote-ls", *where.scope_args, "--updates", installation.columns_arg(UPDATE_COLUMNS), remote]
            try:
                updates = parse_updates(where.run(argv).stdout)
            except CommandFailed:
                remotes.require_enabled(where, remote)  # the clearer message, when that is why
                raise
        pinned = None
        if desired["uninstall_unused"]:
            pinned = pinned_patterns((where.read_file("repo/config") or b"").decode("utf-8", "replace"))
        return {"installed": installed, "updates": updates, "pinned": pinned}

    def plan(self, current: dict, desired: dict) -> Plan:
        installed, wants, remote = current["installed"], desired["wants"], desired["remote"]
        apps = plan_apps(installed, wants, desired["state"], remote, exclusive=desired["exclusive"], updates=current["updates"])
        unused = []
        staying = [ref for ref in installed if ref["ref"] in apps["after"]["refs"]]
        if desired["uninstall_unused"]:
            keep = [ref["ref"] for ref in installed if any(matches(want, ref, None) for want in wants)]
            unused = unused_runtimes(staying, current["pinned"], keep)
        return Plan(
            changed=apps["changed"] or bool(unused),
            diff=_diff(apps, unused),
            actions={"apps": apps, "unused": unused, "staying": staying},
            result={"installed": apps["install"], "updated": apps["update"], "removed": apps["uninstall"] + unused},
        )

    def prepare(self, host, plan: Plan, desired: dict) -> None:
        if plan.actions["apps"]["install"]:
            remotes.require_enabled(installation.Installation(host, desired["place"]), desired["remote"])

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        where = installation.Installation(host, desired["place"])
        apps, unused = plan.actions["apps"], plan.actions["unused"]
        remote, no_related = desired["remote"], desired["no_related"]
        install = install_argv(apps, remote, where.scope_args, no_related) if remote else None
        uninstall = uninstall_argv(apps, where.scope_args, no_related)
        try:
            if install:
                where.run(install)
            if uninstall:
                where.run(uninstall)
            if unused:
                where.run(["uninstall", *where.scope_args, "--noninteractive", "-y", "--unused"])
        finally:
            where.forget("list")
        if not unused:
            return {}
        # flatpak decides what is unused; what it removed is read back.
        left = {ref["ref"] for ref in installed_refs(where)}
        gone = sorted({ref["ref"] for ref in plan.actions["staying"]} - left)
        return {"removed": apps["uninstall"] + gone, "changed": apps["changed"] or bool(gone), "diff": _diff(apps, gone)}


def _diff(apps: dict, unused: list) -> dict:
    after = dict(apps["after"], refs={ref: origin for ref, origin in apps["after"]["refs"].items() if ref not in unused})
    return {"before": apps["before"], "after": after}


UNIT = AppsUnit()
