# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Layered packages and base overrides: validate, plan against the deployment changes stack on, build commands.

Everything that can go into one rpm-ostree transaction does: ``install --uninstall=…``, or
``override remove … --replace=… --install=… --uninstall=…``.  ``override reset`` is its own subcommand, so a
plan that resets overrides and also changes others needs two transactions; no plan needs more.
A package already requested on the pending deployment is never requested again, so no upgrade is pulled in.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Callable, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import CommandFailed
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _registry as registry

STATES = ("present", "absent", "exact")

_NAME_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+\-]*(?:\([A-Za-z0-9_.+\-/:]+\))?")
_LOCAL_RE = re.compile(r"^(?:/|file://|https?://).+\.rpm\Z")
_PROVIDED_RE = re.compile(r'"(?P<name>[^"]+)" is already provided by: (?P<nevra>\S+?)\.(?:\s|$)')


class InvalidPackage(HostsError, ValueError):
    pass


def is_local(spec: str) -> bool:
    return bool(_LOCAL_RE.match(spec))


def validate_names(names: list, what: str = "package", allow_local: bool = False) -> list:
    """Package names or capabilities (or local RPM specs where allowed); no whitespace, quotes or shell metacharacters."""
    seen, result = set(), []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InvalidPackage("%s names must be non-empty strings, got %r" % (what, name))
        check_value(name, what, InvalidPackage)
        if is_local(name):
            if not allow_local:
                raise InvalidPackage("%s takes package names, not local RPMs like %r" % (what, name))
            validate_local([name], what)
        elif not _NAME_RE.fullmatch(name):
            raise InvalidPackage(
                "%s: %r is not a package name: letters, digits and . _ + - only, no spaces or shell characters" % (what, name)
            )
        if name in seen:
            raise InvalidPackage("%s %r is listed twice" % (what, name))
        seen.add(name)
        result.append(name)
    return result


def validate_local(specs: list, what: str) -> list:
    for spec in specs:
        if isinstance(spec, str):
            check_value(spec, what, InvalidPackage)
        if not isinstance(spec, str) or not is_local(spec) or re.search(r"[\s\x00;&|`$<>'\"]", spec):
            raise InvalidPackage("%s entries are local RPM paths or http(s)/file URLs ending in .rpm; %r is not" % (what, spec))
        if spec.endswith(".src.rpm"):
            raise InvalidPackage("%r is a source RPM; rpm-ostree layers binary RPMs only" % spec)
    return list(specs)


# --- RPM headers: NEVRA of a local package, read from the file itself ----------------------------------------------

_LEAD_SIZE = 96
_HEADER_MAGIC = b"\x8e\xad\xe8\x01"
_TAG_NAME, _TAG_VERSION, _TAG_RELEASE, _TAG_EPOCH, _TAG_ARCH = 1000, 1001, 1002, 1003, 1022


def _unpack(fmt: str, data: bytes, offset: int, what: str) -> tuple:
    size = struct.calcsize(fmt)
    if offset < 0 or offset + size > len(data):
        raise InvalidPackage("not a complete RPM file: it ends inside the %s" % what)
    return struct.unpack_from(fmt, data, offset)


def _read_header(data: bytes, offset: int) -> tuple:
    if data[offset : offset + 4] != _HEADER_MAGIC:
        raise InvalidPackage("not an RPM file: header magic missing")
    count, size = _unpack(">II", data, offset + 8, "header")
    index_start = offset + 16
    store = index_start + 16 * count
    if store + size > len(data):
        raise InvalidPackage(
            "not a complete RPM file: its header claims %d entries and %d bytes more than it holds" % (count, size)
        )
    tags = {}
    for number in range(count):
        tag, kind, value_offset, _count = _unpack(">IIII", data, index_start + 16 * number, "header index")
        position = store + value_offset
        if value_offset >= size:
            raise InvalidPackage("not an RPM file: header entry %d points outside the header" % number)
        if kind == 6:  # STRING
            end = data.find(b"\x00", position, store + size)
            if end < 0:
                raise InvalidPackage("not an RPM file: an unterminated string in the header")
            tags[tag] = data[position:end].decode("utf-8", "replace")
        elif kind == 4:  # INT32
            tags[tag] = _unpack(">i", data, position, "header")[0]
    return tags, store + size


def rpm_nevra(data: bytes) -> str:
    """NAME-[EPOCH:]VERSION-RELEASE.ARCH of an RPM, read from its header (lead, signature header, header).

    Every malformed or truncated file is an :class:`InvalidPackage` with a message, never another exception."""
    if len(data) < _LEAD_SIZE or data[:4] != b"\xed\xab\xee\xdb":
        raise InvalidPackage("not an RPM file: lead magic missing")
    _signature, end = _read_header(data, _LEAD_SIZE)
    end += (8 - end % 8) % 8
    tags, _end = _read_header(data, end)
    try:
        name, version, release, arch = (tags[t] for t in (_TAG_NAME, _TAG_VERSION, _TAG_RELEASE, _TAG_ARCH))
    except KeyError:
        raise InvalidPackage("RPM header lacks name, version, release or arch") from None
    epoch = tags.get(_TAG_EPOCH)
    evr = "%s:%s-%s" % (epoch, version, release) if epoch else "%s-%s" % (version, release)
    nevra = "%s-%s.%s" % (name, evr, arch)
    check_value(nevra, "the RPM's name, version, release and arch", InvalidPackage)
    return nevra


def nevra_name(nevra: str) -> str:
    """The package name of a NEVRA (``name-[e:]version-release.arch``)."""
    return nevra.rsplit("-", 2)[0]


# --- planning ---------------------------------------------------------------------------------------------------


def plan_layering(
    merge: dict,
    names: list,
    state: str,
    local_nevras: Optional[dict] = None,
    override_remove: Optional[list] = None,
    override_replace_nevras: Optional[dict] = None,
    override_reset: Optional[list] = None,
    skip: Optional[dict] = None,
    provided: Optional[list] = None,
    drop_provided: bool = False,
) -> dict:
    """From the deployment changes stack on (``merge``) to the desired layering.

    ``local_nevras`` and ``override_replace_nevras`` map local RPM specs to their NEVRAs; ``skip`` maps package
    names already provided by the base (and not to be requested) to the providing NEVRA.  ``provided`` names the
    packages the image the host follows in image mode provides: never requested; with ``drop_provided`` (the
    deployment already follows that image) their requests are dropped, else left to the switch, which drops them.
    """
    if state not in STATES:
        raise InvalidPackage("state must be one of %s" % ", ".join(STATES))
    local_nevras = local_nevras or {}
    override_replace_nevras = override_replace_nevras or {}
    skip = skip or {}
    requested = set(merge.get("requested_packages") or [])
    requested_local = set(merge.get("requested_local_packages") or [])
    removals = set(merge.get("requested_base_removals") or [])
    replaced = set(merge.get("requested_base_local_replacements") or [])

    provided_set = set(provided or [])
    repo_names = [n for n in names if not is_local(n)]
    local_specs = [n for n in names if is_local(n)]
    install, install_local, uninstall = [], [], []
    if state in ("present", "exact"):
        install = [n for n in repo_names if n not in requested and n not in skip and n not in provided_set]
        install_local = [s for s in local_specs if local_nevras[s] not in requested_local]
    if state == "absent":
        uninstall = [n for n in repo_names if n in requested]
        uninstall += sorted(local_nevras[s] for s in local_specs if local_nevras[s] in requested_local)
    if state == "exact":
        wanted = set(repo_names) - provided_set
        wanted_local = {local_nevras[s] for s in local_specs}
        uninstall = sorted(requested - wanted) + sorted(requested_local - wanted_local)
    if drop_provided:
        uninstall = sorted(set(uninstall) | (requested & provided_set))
    else:
        # The switch to the image drops these requests in its own transaction.
        uninstall = [n for n in uninstall if n not in provided_set]

    remove = [n for n in (override_remove or []) if n not in removals]
    replace = [s for s in sorted(override_replace_nevras) if override_replace_nevras[s] not in replaced]
    reset = []
    if override_reset == ["all"]:
        reset = ["all"] if removals or replaced or merge.get("requested_base_remote_replacements") else []
    elif override_reset:
        replaced_names = {nevra_name(n) for n in replaced}
        reset = [n for n in override_reset if n in removals or n in replaced_names]
        conflict = set(reset) & set(override_remove or [])
        if conflict:
            raise InvalidPackage("cannot both remove and reset the override of %s" % ", ".join(sorted(conflict)))

    after_requested = sorted((requested | set(install)) - set(uninstall))
    after_local = sorted((requested_local | {local_nevras[s] for s in install_local}) - set(uninstall))
    after_removals = set(removals) | set(remove)
    after_replaced = set(replaced) | {override_replace_nevras[s] for s in replace}
    if reset == ["all"]:
        after_removals, after_replaced = set(), set()
    else:
        after_removals -= set(reset)
        after_replaced = {n for n in after_replaced if nevra_name(n) not in set(reset)}
    return {
        "changed": bool(install or install_local or uninstall or remove or replace or reset),
        "install": install,
        "install_local": install_local,
        "uninstall": uninstall,
        "override_remove": remove,
        "override_replace": replace,
        "override_reset": reset,
        "skipped": dict(skip),
        "before": {
            "requested_packages": sorted(requested),
            "requested_local_packages": sorted(requested_local),
            "requested_base_removals": sorted(removals),
            "requested_base_local_replacements": sorted(replaced),
        },
        "after": {
            "requested_packages": after_requested,
            "requested_local_packages": after_local,
            "requested_base_removals": sorted(after_removals),
            "requested_base_local_replacements": sorted(after_replaced),
        },
    }


def commands(plan: dict, allow_inactive: bool = False, apply_live: bool = False, dry_run: bool = False) -> list:
    """The rpm-ostree argv lists (without the binary) that carry the plan out, in as few transactions as possible."""
    installs = plan["install"] + plan["install_local"]
    uninstalls = plan["uninstall"]
    common = ["--dry-run"] if dry_run else []
    result = []
    if plan["override_remove"] or plan["override_replace"]:
        if plan["override_remove"]:
            argv = ["override", "remove", *plan["override_remove"]]
            argv += ["--replace=" + spec for spec in plan["override_replace"]]
        else:
            argv = ["override", "replace", *plan["override_replace"]]
        argv += ["--install=" + pkg for pkg in installs] + ["--uninstall=" + pkg for pkg in uninstalls]
        result.append(argv + common)
        installs, uninstalls = [], []
    if plan["override_reset"]:
        argv = ["override", "reset"] + (["--all"] if plan["override_reset"] == ["all"] else list(plan["override_reset"]))
        argv += ["--install=" + pkg for pkg in installs] + ["--uninstall=" + pkg for pkg in uninstalls]
        result.append(argv + common)
        installs, uninstalls = [], []
    if installs:
        argv = ["install", "--idempotent", "--unchanged-exit-77"]
        argv += ["--allow-inactive"] if allow_inactive else []
        argv += ["--apply-live", "--assumeyes"] if apply_live else []
        argv += ["--uninstall=" + pkg for pkg in uninstalls] + installs
        result.append(argv + common)
    elif uninstalls:
        result.append(["uninstall", "--idempotent", "--unchanged-exit-77", *uninstalls] + common)
    return result


def provided_by_base(stderr: str) -> dict:
    """Packages rpm-ostree refused because the base already provides them: {name: providing NEVRA}."""
    return {match.group("name"): match.group("nevra") for match in _PROVIDED_RE.finditer(stderr or "")}


def without_provided(attempt: Callable[[dict], Any], asked: Callable[[], list]) -> tuple:
    """``attempt(provided)`` runs a transaction that layers ``asked()``; when rpm-ostree refuses it because the base
    already provides some of them (nothing changed then), those are added to ``provided`` and it is tried again
    without them.  Returns (what the last attempt returned, provided)."""
    provided: dict = {}
    while True:
        try:
            return attempt(provided), provided
        except CommandFailed as exc:
            refused = provided_by_base(exc.result.stderr)
            if not refused or set(refused) - set(asked()):
                raise
            provided.update(refused)


# --- the unit ----------------------------------------------------------------------------------------------------------

MAX_RPM_READ = 64 * 1024 * 1024


def nevras(host, specs: list) -> dict:
    result = {}
    for spec in specs:
        try:
            result[spec] = rpm_nevra(host.fetch(spec, MAX_RPM_READ))
        except (OSError, ValueError) as exc:
            raise InvalidPackage("cannot read the RPM header of %s: %s" % (spec, exc)) from None
    return result


def plain_http(params: dict) -> list:
    return [spec for spec in list(params["name"]) + list(params["override_replace"]) if spec.startswith("http://")]


class PackagesUnit:
    """immutable.hosts.rpm_ostree_packages: layered packages and base overrides of the deployment changes stack on,
    in as few rpm-ostree transactions as the tool allows."""

    ARGUMENT_SPEC = dict(
        name=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=list(STATES), default="present"),
        override_remove=dict(type="list", elements="str", default=[]),
        override_replace=dict(type="list", elements="str", default=[]),
        override_reset=dict(type="list", elements="str", default=[]),
        allow_inactive=dict(type="bool", default=False),
        apply_live=dict(type="bool", default=False),
        allow_insecure=dict(type="bool", default=False),
        provided_by=dict(type="str"),
        **reader.COMMON_ARGUMENT_SPEC,
    )
    MODULE_OPTIONS: dict = {}

    def desired(self, params: dict, host) -> dict:
        reader.check_common(params)
        names = validate_names(params["name"], "name", allow_local=True)
        validate_names(params["override_remove"], "override_remove")
        validate_local(params["override_replace"], "override_replace")
        plain = plain_http(params)
        if plain and not params["allow_insecure"]:
            raise InvalidPackage(
                "%s: plain http:// RPMs are not verified by anyone (rpm-ostree checks no signature of a local RPM); "
                "use https://, a path or a repository, or confirm with allow_insecure=true" % ", ".join(plain)
            )
        for spec in plain:
            host.warn("%s is fetched over plain HTTP and installed unverified (allow_insecure=true)" % spec)
        reset = params["override_reset"]
        if "all" in reset and reset != ["all"]:
            raise InvalidPackage("override_reset takes either package names or the single value 'all'")
        if reset != ["all"]:
            validate_names(reset, "override_reset")
        if params["apply_live"] and (
            params["state"] != "present" or params["override_remove"] or params["override_replace"] or reset
        ):
            raise InvalidPackage("apply_live can only add packages (state=present, no overrides); removals need a reboot")
        if params["state"] == "absent" and not names:
            raise InvalidPackage("state=absent needs the packages to remove in name")
        return dict(params, names=names)

    def read(self, host, desired: dict) -> dict:
        local = nevras(host, [name for name in desired["names"] if is_local(name)])
        replace = nevras(host, desired["override_replace"])
        reader.require_rpm_ostree(host)
        merge = reader.merge(reader.status(host))
        image = registry.inspect_tag(host, desired["provided_by"]) if desired["provided_by"] else None
        return {"merge": merge, "local": local, "replace": replace, "image": image}

    def plan(self, current: dict, desired: dict, skip: Optional[dict] = None) -> Plan:
        image = current.get("image")
        found = plan_layering(
            current["merge"],
            desired["names"],
            desired["state"],
            local_nevras=current["local"],
            override_remove=desired["override_remove"],
            override_replace_nevras=current["replace"],
            override_reset=desired["override_reset"],
            skip=skip,
            provided=image["packages"] if image else None,
            drop_provided=bool(image) and registry.follows(current["merge"].get("origin"), image["pinned"]),
        )
        return Plan(
            changed=found["changed"],
            diff={"before": found["before"], "after": found["after"]},
            actions={"layering": found, "current": current},
            result={
                "installed": found["install"] + sorted(current["local"][s] for s in found["install_local"]),
                "removed": found["uninstall"],
                "overrides": {
                    "remove": found["override_remove"],
                    "replace": [current["replace"][s] for s in found["override_replace"]],
                    "reset": found["override_reset"],
                },
                "provided_by_base": dict(skip or {}),
                "provided_by_image": sorted(set(image["packages"]) & set(desired["names"])) if image else [],
            },
            reboot_reasons=["layering-changed"],
        )

    def prepare(self, host, plan: Plan, desired: dict) -> Optional[Plan]:
        reader.prepare(host, desired)
        if host.check_mode and plan.actions["layering"]["install"] and not desired["allow_inactive"]:
            pending = host.assumed_files(reader.REPOS_DIR)
            if pending:
                # rpm-ostree's --dry-run reads the repositories as they are; those this check would add or change
                # are not there yet, so it would fail on their packages.  The plan stands without its depsolve.
                host.warn(
                    "not asked of rpm-ostree (--dry-run) whether the base provides %s or they resolve: the run changes "
                    "%s first" % (", ".join(plan.actions["layering"]["install"]), ", ".join(pending))
                )
                return None
            # Only rpm-ostree's own depsolve knows which packages the base already provides: ask it with --dry-run.
            return self._run(host, plan, desired, dry_run=True)
        return None

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        final = self._run(host, plan, desired, dry_run=False)
        return dict(final.result, changed=final.changed, diff=final.diff)

    def _run(self, host, plan: Plan, desired: dict, dry_run: bool) -> Plan:
        """The plan's commands; when the base already provides a package, it is dropped and the plan made again."""
        current = {"plan": plan}

        def attempt(provided: dict) -> Plan:
            if provided:
                current["plan"] = self.plan(plan.actions["current"], desired, provided)
            planned = current["plan"]
            if planned.changed:
                for argv in commands(planned.actions["layering"], desired["allow_inactive"], desired["apply_live"], dry_run):
                    reader.transaction(host, argv, desired, dry_run=dry_run)
            return planned

        if desired["allow_inactive"]:
            return attempt({})
        return without_provided(attempt, lambda: current["plan"].actions["layering"]["install"])[0]

    def report(self, host, plan: Plan, _desired: dict) -> dict:
        return reader.report(host, plan.changed, plan.reboot_reasons)


UNIT = PackagesUnit()
