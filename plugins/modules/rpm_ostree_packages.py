#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rpm_ostree_packages
short_description: Layer packages on an rpm-ostree host and override its base packages, in one transaction
version_added: 0.1.0
description:
  - Makes layered packages present, absent, or exactly a given set, and removes, replaces or resets base packages,
    on the deployment new rpm-ostree changes stack on (the pending one, so changes accumulate on a staged update).
  - Reads C(rpm-ostree status --json) once and plans as data. A package already requested on the pending
    deployment is never requested again, so no unrequested upgrade is pulled in (unlike
    C(community.general.rpm_ostree_pkg), which runs C(install) every time). A converged host sees no mutating command.
  - All changes go into one transaction (C(install --uninstall=...), or C(override remove ... --replace=...
    --install=... --uninstall=...)). Resetting overrides is a separate rpm-ostree subcommand, so a run that resets
    and also changes other overrides costs two transactions.
  - Local RPMs are compared by NEVRA, read from the RPM header of the file.
  - A package the base image already provides is reported in RV(provided_by_base) and not requested, unless
    O(allow_inactive=true). Finding that out costs rpm-ostree's own depsolve answer, so it happens only when there
    are packages to install.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
options:
  name:
    description:
      - Packages to layer, by name or capability, or local RPMs by absolute path, C(file://) or C(http(s)://) URL.
    type: list
    elements: str
    default: []
  state:
    description:
      - V(present) layers O(name), V(absent) removes those layered packages, V(exact) makes the layered set
        exactly O(name) (repository and local packages alike).
    type: str
    choices: [present, absent, exact]
    default: present
  override_remove:
    description: Base packages to remove from the image (C(rpm-ostree override remove)).
    type: list
    elements: str
    default: []
  override_replace:
    description: Local RPMs (paths or URLs) that replace base packages (C(rpm-ostree override replace)).
    type: list
    elements: str
    default: []
  override_reset:
    description:
      - Base package names whose removal or replacement is undone, or V(all) for every override.
    type: list
    elements: str
    default: []
  allow_inactive:
    description:
      - Request packages even when the base already provides them (an inactive request, which becomes active if
        a later base drops the package). By default such packages are skipped and reported in RV(provided_by_base).
    type: bool
    default: false
  apply_live:
    description:
      - Also apply the new packages to the running system (C(--apply-live)). Only pure additions can go live;
        removals and overrides need a reboot, so they are refused with this option.
    type: bool
    default: false
  allow_insecure:
    description:
      - Confirms that local RPMs given as plain C(http://) URLs are wanted. rpm-ostree checks no signature of a local
        RPM, so anyone on the network path could swap such a file for one that runs what they like as root; they are
        refused otherwise, and warned about when confirmed. Use C(https://), a path, or a package repository.
    type: bool
    default: false
notes:
  - In check mode, when packages would be installed, rpm-ostree is asked with C(--dry-run) which of them the base
    already provides, so the prediction matches what a real run does.
seealso:
  - module: immutable.hosts.ostree_facts
  - module: immutable.hosts.rebase
"""

EXAMPLES = r"""
- name: Layer a few tools
  immutable.hosts.rpm_ostree_packages:
    name: [htop, tmux, distrobox]
  become: true

- name: The layered set is exactly this; firefox comes out of the base image
  immutable.hosts.rpm_ostree_packages:
    name: [htop, vim-enhanced, /var/tmp/rpmfusion-free-release-42-1.noarch.rpm]
    state: exact
    override_remove: [firefox, firefox-langpacks]
  become: true

- name: Undo every base override
  immutable.hosts.rpm_ostree_packages:
    override_reset: [all]
  become: true
"""

RETURN = r"""
installed:
  description: Packages (and local RPM NEVRAs) newly requested.
  returned: success
  type: list
  elements: str
  sample: [htop]
removed:
  description: Layered packages no longer requested.
  returned: success
  type: list
  elements: str
  sample: [tmux]
overrides:
  description: Base overrides added (C(remove), C(replace)) and undone (C(reset)).
  returned: success
  type: dict
  sample: {remove: [firefox], replace: [], reset: []}
provided_by_base:
  description: Packages not requested because the base already provides them, with the providing NEVRA.
  returned: success
  type: dict
  sample: {nano: nano-8.1-1.fc41.x86_64}
reboot_required:
  description: Whether the next boot differs from the running system.
  returned: success
  type: bool
  sample: true
reboot_reasons:
  description: Why a reboot is needed, for example V(staged-update), V(layering-changed).
  returned: success
  type: list
  elements: str
  sample: [staged-update, layering-changed]
staged_locked:
  description:
    - Whether a staged deployment waits with its finalization locked; a plain reboot would discard it, so it does
      not count in RV(reboot_required) (see C(ansible_facts.ostree.staged_locked)).
  returned: success
  type: bool
  sample: false
staged_locked_reasons:
  description: What the locked staged deployment would change.
  returned: success
  type: list
  elements: str
  sample: []
deployment:
  description: The deployment new changes stack on (the pending one after a change).
  returned: success
  type: dict
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, install, --idempotent, --unchanged-exit-77, htop]]
diff:
  description: The layering requests of the pending deployment before and after.
  returned: success
  type: dict
  sample:
    before: {requested_packages: [vim-enhanced], requested_local_packages: [], requested_base_removals: [], requested_base_local_replacements: []}
    after: {requested_packages: [htop, vim-enhanced], requested_local_packages: [], requested_base_removals: [], requested_base_local_replacements: []}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.immutable.hosts.plugins.module_utils import layering
from ansible_collections.immutable.hosts.plugins.module_utils.ostree_host import COMMON_ARGUMENT_SPEC, run_module
from ansible_collections.immutable.hosts.plugins.module_utils.runner import CommandFailed

MAX_RPM_READ = 64 * 1024 * 1024


def read_rpm(spec):
    if spec.startswith(("http://", "https://")):
        with open_url(spec, timeout=60) as response:
            return response.read(MAX_RPM_READ)
    path = spec[len("file://") :] if spec.startswith("file://") else spec
    with open(path, "rb") as handle:
        return handle.read(MAX_RPM_READ)


def nevras(specs):
    result = {}
    for spec in specs:
        try:
            result[spec] = layering.rpm_nevra(read_rpm(spec))
        except (OSError, ValueError) as exc:
            raise ValueError("cannot read the RPM header of %s: %s" % (spec, exc)) from None
    return result


def validate(params):
    names = layering.validate_names(params["name"], "name", allow_local=True)
    layering.validate_names(params["override_remove"], "override_remove")
    layering.validate_local(params["override_replace"], "override_replace")
    plain = plain_http(params)
    if plain and not params["allow_insecure"]:
        raise ValueError(
            "%s: plain http:// RPMs are not verified by anyone (rpm-ostree checks no signature of a local RPM); "
            "use https://, a path or a repository, or confirm with allow_insecure=true" % ", ".join(plain)
        )
    reset = params["override_reset"]
    if "all" in reset and reset != ["all"]:
        raise ValueError("override_reset takes either package names or the single value 'all'")
    if reset != ["all"]:
        layering.validate_names(reset, "override_reset")
    if params["apply_live"] and (
        params["state"] != "present" or params["override_remove"] or params["override_replace"] or reset
    ):
        raise ValueError("apply_live can only add packages (state=present, no overrides); removals need a reboot")
    if params["state"] == "absent" and not names:
        raise ValueError("state=absent needs the packages to remove in name")
    return names


def try_commands(host, plan, replan, params, dry_run):
    """Run the plan's commands; when the base already provides a package, drop it and plan again."""
    skip = {}
    while True:
        argvs = layering.commands(plan, params["allow_inactive"], params["apply_live"], dry_run=dry_run)
        try:
            for argv in argvs:
                host.run(argv)
            return plan, skip
        except CommandFailed as exc:
            provided = {} if params["allow_inactive"] else layering.provided_by_base(exc.result.stderr)
            if not provided or set(provided) - set(plan["install"]):
                raise
            skip.update(provided)
            plan = replan(skip)
            if not plan["changed"]:
                return plan, skip


def plain_http(params):
    return [spec for spec in list(params["name"]) + list(params["override_replace"]) if spec.startswith("http://")]


def converge(host):
    params = host.module.params
    names = validate(params)
    for spec in plain_http(params):
        host.module.warn("%s is fetched over plain HTTP and installed unverified (allow_insecure=true)" % spec)
    local = nevras([n for n in names if layering.is_local(n)])
    replace = nevras(params["override_replace"])
    host.require_ostree()
    host.load()
    merge = host.merge()

    def replan(skip):
        return layering.plan_layering(
            merge,
            names,
            params["state"],
            local_nevras=local,
            override_remove=params["override_remove"],
            override_replace_nevras=replace,
            override_reset=params["override_reset"],
            skip=skip,
        )

    plan = replan({})
    skip = {}
    if plan["changed"]:
        host.wait_idle()
        host.refuse_driver()
        if plan["install"] and not params["allow_inactive"] and host.module.check_mode:
            plan, skip = try_commands(host, plan, replan, params, dry_run=True)
        elif not host.module.check_mode:
            plan, skip = try_commands(host, plan, replan, params, dry_run=False)
    host.exit(
        plan["changed"],
        {"before": plan["before"], "after": plan["after"]},
        predicted_reasons=["layering-changed"],
        installed=plan["install"] + sorted(local[s] for s in plan["install_local"]),
        removed=plan["uninstall"],
        overrides={
            "remove": plan["override_remove"],
            "replace": [replace[s] for s in plan["override_replace"]],
            "reset": plan["override_reset"],
        },
        provided_by_base=skip,
    )


def main():
    argument_spec = dict(
        name=dict(type="list", elements="str", default=[]),
        state=dict(type="str", choices=["present", "absent", "exact"], default="present"),
        override_remove=dict(type="list", elements="str", default=[]),
        override_replace=dict(type="list", elements="str", default=[]),
        override_reset=dict(type="list", elements="str", default=[]),
        allow_inactive=dict(type="bool", default=False),
        apply_live=dict(type="bool", default=False),
        allow_insecure=dict(type="bool", default=False),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, converge)


if __name__ == "__main__":
    main()
