# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole host in one run (``immutable.hosts.host_state``): the document's schema, made of the units' own
argument specs, the resources it names in the order they converge, and the run itself.

Every resource is one unit, run exactly as its own module would run it, against one host reader: each tool's state
is read once for all of them.  The document is checked whole (every resource's ``desired``) before any resource
reads or changes anything.  rpm-ostree changes stack: a rebase onto an ostree ref layers the wanted packages in the
same transaction.  A secret that changes restarts the running services of the units that read it.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import converge, errors, message
from ansible_collections.immutable.hosts.plugins.module_utils.containers import _auth as auth
from ansible_collections.immutable.hosts.plugins.module_utils.containers import _policy as policy
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _apps as apps
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _installation as installation
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _overrides as overrides
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _remotes as remotes
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _facts as facts
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _initramfs as initramfs
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _kargs as kargs
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _packages as packages
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _rebase as rebase
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _repos as repos
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _update_policy as update_policy
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet as quadlet
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _rootless as rootless
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _secrets as secrets
from ansible_collections.immutable.hosts.plugins.module_utils.podman._instance import Instance

OSTREE_KEYS = tuple(reader.COMMON_ARGUMENT_SPEC)
INSTALLATION_KEYS = tuple(installation.COMMON_ARGUMENT_SPEC)
# The arguments that name a resource (for the drift report's label), of every unit.
IDENTITY_KEYS = ("name", "app", "global", "kind", "user", "scope", "installation", "ref", "image", "copr", "registry", "state")
# The units whose resources stack on the pending deployment and report why the next boot differs.
OS_MODULES = ("rebase", "rpm_ostree_packages", "kargs", "initramfs")


# --- the schema -------------------------------------------------------------------------------------------------------


def options(unit: Any, without: tuple = ()) -> dict:
    return {key: copy.deepcopy(value) for key, value in unit.ARGUMENT_SPEC.items() if key not in without}


def one(unit: Any, without: tuple = ()) -> dict:
    """One resource of ``unit``: its options (but ``without``) as suboptions, its checks as theirs (but those about an
    option left out, which the document sets itself)."""
    return dict(type="dict", options=options(unit, without), **checks(unit.MODULE_OPTIONS, without))


def checks(rules: dict, without: tuple) -> dict:
    """A unit's ``MODULE_OPTIONS`` without the rules that name an option in ``without``."""
    found: dict = {}
    for kind, entries in rules.items():
        kept = []
        for entry in entries:
            names = [entry[0], *entry[2]] if kind == "required_if" else list(entry)
            if not any(name in without for name in names):
                kept.append(copy.deepcopy(entry))
        if kept:
            found[kind] = kept
    return found


def many(unit: Any, without: tuple = ()) -> dict:
    """A list of resources of ``unit``."""
    return dict(one(unit, without), type="list", elements="dict", default=[])


def entries(base: dict, **more: dict) -> dict:
    """A list of entries (users, installations), each with the options of ``base`` and ``more``."""
    return dict(type="list", elements="dict", default=[], options=dict(base, **more))


def override_items() -> dict:
    """The overrides of an installation: an item without a ``mode`` takes the installation's ``overrides_mode``."""
    spec = many(overrides.UNIT, INSTALLATION_KEYS)
    del spec["options"]["mode"]["default"]
    return spec


ARGUMENT_SPEC = dict(
    os=dict(
        type="dict",
        options=dict(
            trust=many(policy.UNIT),
            registry_auth=many(auth.UNIT, ("scope", "user")),
            repos=many(repos.UNIT),
            rebase=one(rebase.UNIT, OSTREE_KEYS + ("install",)),
            packages=one(packages.UNIT, OSTREE_KEYS),
            kargs=many(kargs.UNIT, OSTREE_KEYS),
            initramfs=one(initramfs.UNIT, OSTREE_KEYS),
            update_policy=one(update_policy.UNIT, ("path",)),
            **copy.deepcopy(reader.COMMON_ARGUMENT_SPEC),
        ),
    ),
    users=entries(
        options(rootless.UNIT),
        secrets=dict(many(secrets.UNIT, ("user",)), no_log=False),  # the list is not; each item's data is
        registry_auth=dict(many(auth.UNIT, ("scope", "user")), no_log=False),  # each item's password is
        quadlets=many(quadlet.UNIT, ("user",)),
    ),
    flatpak=entries(
        dict(copy.deepcopy(installation.COMMON_ARGUMENT_SPEC), user=dict(type="str", aliases=["name"])),
        remotes=many(remotes.UNIT, INSTALLATION_KEYS),
        apps=many(apps.UNIT, INSTALLATION_KEYS + ("exclusive", "uninstall_unused")),
        apps_exclusive=dict(type="bool", default=False),
        apps_latest=dict(type="bool", default=False),
        uninstall_unused=dict(type="bool", default=False),
        overrides=override_items(),
        overrides_mode=dict(type="str", choices=["merge", "exact"], default="merge"),
    ),
    secrets=dict(many(secrets.UNIT), no_log=False),
    quadlets=many(quadlet.UNIT),
    facts=dict(type="bool", default=False),
)


# --- the resources ----------------------------------------------------------------------------------------------------


@dataclass
class Resource:
    """One resource of the document: the module whose unit converges it, with the options it gets."""

    module: str
    unit: Any
    params: dict
    desired: Any = None
    deferred: Optional[str] = None  # why it could not be checked yet (its user is created by this run)
    result: dict = field(default_factory=dict)
    early_warnings: list = field(default_factory=list)  # what checking its options warned about

    @property
    def args(self) -> dict:
        """The options naming the resource, for the report (never a secret); the system installation is the default
        one, named as a task of the module itself would name it."""
        found = {key: self.params[key] for key in IDENTITY_KEYS if self.params.get(key) not in (None, "", [], False)}
        if self.module == "image_policy":
            # A policy entry is its transport and scope ("" is the transport's own default; none, the global one).
            found.pop("scope", None)
            if self.params.get("scope") is not None:
                found["scope"] = self.params["scope"]
            found["transport"] = self.params["transport"]
        elif found.get("scope") == "system":
            del found["scope"]
        return found

    @property
    def os(self) -> bool:
        return self.module in OS_MODULES


def resources(document: dict) -> list:
    """Every resource of the document, in the order they converge: the OS (image trust, registry credentials and
    package repositories first, since what follows needs them; rebase, packages, kernel arguments, initramfs, update
    policy), the rootless users, the Flatpak installations (remotes, apps, overrides), the secrets and registry
    credentials, the Quadlet units."""
    found = []
    system = document.get("os") or {}
    common = {key: system.get(key, spec.get("default")) for key, spec in reader.COMMON_ARGUMENT_SPEC.items()}
    for item in system.get("trust") or []:
        found.append(Resource("image_policy", policy.UNIT, dict(item)))
    for item in system.get("registry_auth") or []:
        found.append(Resource("registry_auth", auth.UNIT, dict(item, scope="system", user=None)))
    for item in system.get("repos") or []:
        found.append(Resource("rpm_repo", repos.UNIT, dict(item)))
    if system.get("rebase"):
        found.append(Resource("rebase", rebase.UNIT, dict(system["rebase"], install=[], **common)))
    if system.get("packages"):
        found.append(Resource("rpm_ostree_packages", packages.UNIT, dict(system["packages"], **common)))
    for item in system.get("kargs") or []:
        found.append(Resource("kargs", kargs.UNIT, dict(item, **common)))
    if system.get("initramfs"):
        found.append(Resource("initramfs", initramfs.UNIT, dict(system["initramfs"], **common)))
    if system.get("update_policy"):
        found.append(Resource("update_policy", update_policy.UNIT, dict(system["update_policy"], path=reader.RPM_OSTREED_CONF)))
    users = document.get("users") or []
    for user in users:
        params = {key: value for key, value in user.items() if key not in ("secrets", "registry_auth", "quadlets")}
        found.append(Resource("rootless_user", rootless.UNIT, params))
    for place in document.get("flatpak") or []:
        where = {key: place.get(key) for key in INSTALLATION_KEYS}
        for item in place.get("remotes") or []:
            found.append(Resource("flatpak_remote", remotes.UNIT, dict(item, **where)))
        for item in app_groups(place):
            found.append(Resource("flatpak", apps.UNIT, dict(item, **where)))
        for item in place.get("overrides") or []:
            mode = item["mode"] or place.get("overrides_mode") or "merge"
            found.append(Resource("flatpak_override", overrides.UNIT, dict(item, mode=mode, **where)))
    for item in document.get("secrets") or []:
        found.append(Resource("podman_secret", secrets.UNIT, dict(item)))
    for user in users:
        for item in user.get("secrets") or []:
            found.append(Resource("podman_secret", secrets.UNIT, dict(item, user=user["name"])))
        for item in user.get("registry_auth") or []:
            found.append(Resource("registry_auth", auth.UNIT, dict(item, scope="user", user=user["name"])))
    for item in document.get("quadlets") or []:
        found.append(Resource("quadlet", quadlet.UNIT, dict(item)))
    for user in users:
        for item in user.get("quadlets") or []:
            found.append(Resource("quadlet", quadlet.UNIT, dict(item, user=user["name"])))
    return found


APP_GROUP_KEYS = ("remote", "state", "arch", "no_related")


def app_groups(place: dict) -> list:
    """The apps of one installation as few ``flatpak`` resources as their options allow: items that differ only in
    their refs are one resource (one ``flatpak install`` or ``uninstall``).  ``apps_latest``, ``apps_exclusive`` and
    ``uninstall_unused`` of the installation apply to its items."""
    groups: dict = {}
    for item in place.get("apps") or []:
        item = dict(item, uninstall_unused=place.get("uninstall_unused", False))
        if item["state"] == "present" and place.get("apps_latest"):
            item["state"] = "latest"
        item["exclusive"] = bool(place.get("apps_exclusive")) and item["state"] != "absent"
        key = tuple(str(item.get(name)) for name in APP_GROUP_KEYS)
        if key in groups:
            groups[key]["name"] = groups[key]["name"] + [name for name in item["name"] if name not in groups[key]["name"]]
        else:
            groups[key] = dict(item, name=list(item["name"]))
    wanted = [group for group in groups.values() if group["state"] != "absent"]
    if place.get("apps_exclusive") and len({group["remote"] for group in wanted}) > 1:
        raise HostsError(
            "apps_exclusive needs every app of the installation from one remote (it removes every other app); these come "
            "from %s" % ", ".join(sorted({str(group["remote"]) for group in wanted}))
        )
    return list(groups.values())


def stack_packages(found: list) -> None:
    """A rebase onto an ostree ref layers the wanted repository packages in its own transaction (``rpm-ostree rebase
    --install``): one transaction and one new deployment, not two; the packages resource then finds them requested.
    Not for images: on a container base a package the image already has fails the whole transaction."""
    base = next((r for r in found if r.module == "rebase"), None)
    layered = next((r for r in found if r.module == "rpm_ostree_packages"), None)
    if base is None or layered is None or not base.params.get("ref") or base.params.get("backend") == "bootc":
        return
    if layered.params["state"] not in ("present", "exact"):
        return
    base.params["install"] = [name for name in layered.params["name"] if not packages.is_local(name)]


def stack_image_mode(found: list) -> None:
    """Image mode (a rebase with follow=digest): the layered packages are what the followed image does not provide
    (its label), read from the same registry answer as the rebase's; the switch itself drops the requests for the
    packages the image provides."""
    base = next((r for r in found if r.module == "rebase"), None)
    layered = next((r for r in found if r.module == "rpm_ostree_packages"), None)
    if base is None or layered is None or base.params.get("follow") != "digest" or layered.params.get("provided_by"):
        return
    layered.params["provided_by"] = base.params["image"]


def label(resource: Resource) -> str:
    """The resource as messages name it: ``flatpak_remote lab (user=core)``."""
    args = resource.args
    name = next(
        (str(args[key]) for key in ("name", "app", "ref", "image", "copr", "registry") if key in args),
        "global" if args.get("global") else "",
    )
    if resource.module == "image_policy":
        name = "default" if args.get("scope") is None else (args["scope"] or '""')
    if isinstance(args.get("name"), list):
        name = ""
    scope = ", ".join("%s=%s" % (key, args[key]) for key in INSTALLATION_KEYS if key in args and key != "scope")
    if args.get("transport") not in (None, "docker"):
        scope = "transport=%s" % args["transport"]  # as the drift report names a policy entry
    return "%s%s%s" % (resource.module, " " + name if name else "", " (%s)" % scope if scope else "")


def users_created(found: list, host) -> set:
    """The users this run creates (rootless_user with create=true, missing now)."""
    return {
        r.params["name"]
        for r in found
        if r.module == "rootless_user"
        and r.params.get("create")
        and r.params.get("state") == "present"
        and host.user(r.params["name"]) is None
    }


def check(found: list, host) -> None:
    """Every resource's options, checked before anything runs; a resource of a user this run creates is checked when
    its turn comes (in check mode, it is reported as to be set up with the user)."""
    created = users_created(found, host)
    for resource in found:
        if resource.params.get("user") in created and resource.module != "rootless_user":
            resource.deferred = "the user %s is created by this run" % resource.params["user"]
            continue
        warned = len(host.warnings)
        try:
            resource.desired = resource.unit.desired(resource.params, host)
        except errors() as exc:
            raise HostsError("%s: %s" % (label(resource), message(exc))) from None
        resource.early_warnings = host.warnings[warned:]
        host.warnings[warned:] = ["%s: %s" % (label(resource), text) for text in resource.early_warnings]


# --- the run ----------------------------------------------------------------------------------------------------------


def secrets_read(text: Optional[str]) -> set:
    """The secrets a Quadlet container unit reads (``Secret=NAME[,options]``)."""
    sections = quadlet.sections_of(text)
    return {value.split(",", 1)[0] for key, value in sections.get("Container", []) if key == "Secret" and value}


def run(document: dict, host) -> dict:
    """Converge the host to ``document``: the module's result, or :class:`HostsError` with the results so far."""
    found = resources(document)
    stack_packages(found)
    stack_image_mode(found)
    check(found, host)
    read_services_together(found, host)
    changed_secrets: set = set()
    done: list = []
    for resource in found:
        start, warned = len(host.commands), len(host.warnings)
        try:
            resource.result = run_one(resource, host, changed_secrets)
        except errors() as exc:
            failed = dict(failure_entry(resource, exc, host.commands[start:]))
            done.append(failed)
            changed = any(entry.get("changed") for entry in done)
            raise HostsError("%s: %s" % (label(resource), message(exc)), changed=changed, resources=done) from None
        resource.result["commands"] = host.commands[start:]
        own = host.warnings[warned:]
        if own or resource.early_warnings:
            resource.result["warnings"] = resource.early_warnings + list(own)
            host.warnings[warned:] = ["%s: %s" % (label(resource), text) for text in own]
        if resource.module == "podman_secret" and resource.result.get("changed"):
            changed_secrets.add((resource.params["user"], resource.params["name"]))
        done.append(entry(resource))
    result: dict = {"changed": any(item["changed"] for item in done), "resources": done}
    result["diff"] = [
        dict(
            diff,
            before_header=diff.get("before_header", item["resource"]),
            after_header=diff.get("after_header", item["resource"]),
        )
        for item in done
        if item["changed"]
        for diff in diffs(item)
    ]
    result.update(reboot_state(found, host, document))
    result["check_mode"] = host.check_mode
    if document.get("facts"):
        result["ansible_facts"] = {"ostree": facts.gather(host)}
    return result


def read_services_together(found: list, host) -> None:
    """The generated services of every Quadlet unit of one user (or of the system), read with one ``systemctl show``
    instead of one each."""
    by_user: dict = {}
    for resource in found:
        if resource.module == "quadlet" and resource.desired is not None and resource.desired["service"] is not None:
            by_user.setdefault(resource.desired["user"], []).append(resource.desired["service"])
    for user, services in by_user.items():
        Instance(host, user).service_states(services)


def run_one(resource: Resource, host, changed_secrets: set) -> dict:
    if resource.deferred is not None:
        if host.check_mode:
            return {"changed": True, "msg": "%s; it is set up once the user exists" % resource.deferred}
        resource.desired = resource.unit.desired(resource.params, host)
    if resource.module == "quadlet" and resource.desired["text"] is not None:
        used = secrets_read(resource.desired["text"])
        if any((resource.params["user"], name) in changed_secrets for name in used):
            resource.desired = dict(resource.desired, restart=True)
    return converge(resource.unit, host, resource.desired)


def entry(resource: Resource) -> dict:
    return dict(resource.result, resource=label(resource), module="immutable.hosts." + resource.module, args=resource.args)


def failure_entry(resource: Resource, exc: BaseException, commands: list) -> dict:
    return {
        "resource": label(resource),
        "module": "immutable.hosts." + resource.module,
        "args": resource.args,
        "failed": True,
        "msg": message(exc),
        "changed": bool(getattr(exc, "changed", False)),
        "commands": commands,
    }


def diffs(item: dict) -> list:
    diff = item.get("diff")
    if not diff:
        return []
    return list(diff) if isinstance(diff, list) else [diff]


def reboot_state(found: list, host, document: dict) -> dict:
    """``reboot_required`` with its reasons: after the run (predicted in check mode) from the OS resources' own
    reports, else from the status, when the document has an OS part or asks for facts."""
    reports = [r.result for r in found if r.os and "reboot_reasons" in r.result]
    if reports:
        reasons: list = []
        for report in reports:
            reasons += [
                reason for reason in report["reboot_reasons"] + report.get("staged_locked_reasons", []) if reason not in reasons
            ]
        return ostree.reboot_verdict(reasons)
    if document.get("os") or document.get("facts"):
        gathered = facts.gather(host)
        return {
            key: gathered[key]
            for key in ("reboot_required", "reboot_reasons", "staged_locked", "staged_locked_reasons")
            if key in gathered
        }
    return {}


class HostStateUnit:
    """``immutable.hosts.host_state``: a composite the scaffold runs whole (``run``), each resource its own unit."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS: dict = {}

    def run(self, params: dict, host) -> dict:
        return run(params, host)


UNIT = HostStateUnit()
