# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body of the module immutable.hosts.flatpak: its argument spec and what it does with a module object.

plugins/modules/flatpak.py holds the documentation and calls main(); immutable.hosts.batch runs execute() in its own
process for several calls at once.  Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import CommandFailed
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak_host import (
    COMMON_ARGUMENT_SPEC,
    check_installation,
    run_module,
)


def validate(params):
    arch = params["arch"] or flatpak.host_arch()
    if not flatpak.is_valid_arch(arch):
        raise ValueError("arch %r is not a valid flatpak arch" % arch)
    if not params["name"]:
        raise ValueError("name lists at least one ref")
    wants = flatpak.parse_refs(params["name"], arch)
    if params["remote"] is not None:
        flatpak.validate_remote_name(params["remote"])
    if params["state"] in ("present", "latest") and not params["remote"]:
        raise ValueError("state=%s needs remote, the remote to install from" % params["state"])
    if params["exclusive"] and params["state"] == "absent":
        raise ValueError("exclusive applies to state=present or latest")
    return wants


def require_remote(host, remote):
    """Fail clearly (and before installing anything) when the remote is unknown or disabled."""
    remotes = host.remotes()
    if remote not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise ValueError(
            "remote %s is not configured in this installation (known: %s); add it with flatpak_remote" % (remote, known)
        )
    if not remotes[remote]["enabled"]:
        raise ValueError("remote %s is disabled; enable it with flatpak_remote (enabled: true)" % remote)


def converge(host):
    params = host.module.params
    wants = validate(params)
    remote, state = params["remote"], params["state"]
    host.require_flatpak()
    installed = host.list_refs()
    updates = None
    if state == "latest" and any(flatpak.matches(w, ref, remote) for w in wants for ref in installed):
        try:
            out = host.run(["remote-ls", *host.scope_args, "--updates", flatpak.columns_arg(flatpak.UPDATE_COLUMNS), remote])
        except CommandFailed:
            require_remote(host, remote)
            raise
        updates = flatpak.parse_updates(out.stdout)
    plan = flatpak.plan_apps(installed, wants, state, remote, exclusive=params["exclusive"], updates=updates)
    install = flatpak.install_argv(plan, remote, host.scope_args, params["no_related"]) if remote else None
    uninstall = flatpak.uninstall_argv(plan, host.scope_args, params["no_related"])
    if install and plan["install"]:
        require_remote(host, remote)
    removed = list(plan["uninstall"])
    changed = plan["changed"]
    if not host.module.check_mode:
        if install:
            host.run(install)
        if uninstall:
            host.run(uninstall)
    if params["uninstall_unused"]:
        after = [ref for ref in installed if ref["ref"] in plan["after"]["refs"]]
        pinned = flatpak.pinned_patterns((host.read_file("repo/config") or b"").decode("utf-8", "replace"))
        keep = [ref["ref"] for ref in installed if any(flatpak.matches(w, ref, None) for w in wants)]
        candidates = flatpak.unused_runtimes(after, pinned, keep)
        if candidates and host.module.check_mode:
            removed += candidates
            changed = True
        elif candidates:
            host.run(["uninstall", *host.scope_args, "--noninteractive", "-y", "--unused"])
            gone = sorted({ref["ref"] for ref in after} - {ref["ref"] for ref in host.list_refs()})
            removed += gone
            changed = changed or bool(gone)
        for ref in removed:
            plan["after"]["refs"].pop(ref, None)
    host.exit(
        changed,
        {"before": plan["before"], "after": plan["after"]},
        installed=plan["install"],
        updated=plan["update"],
        removed=removed,
    )


ARGUMENT_SPEC = dict(
    name=dict(type="list", elements="str", required=True),
    remote=dict(type="str"),
    state=dict(type="str", choices=["present", "absent", "latest"], default="present"),
    exclusive=dict(type="bool", default=False),
    arch=dict(type="str"),
    no_related=dict(type="bool", default=False),
    uninstall_unused=dict(type="bool", default=False),
    **COMMON_ARGUMENT_SPEC,
)
MODULE_OPTIONS = {}


def validate_call(params):
    """Every check the call makes before touching the host (batch runs this for all calls first)."""
    check_installation(params)
    validate(params)


def execute(module):
    run_module(module, converge)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
