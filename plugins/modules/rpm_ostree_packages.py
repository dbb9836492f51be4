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
requirements:
  - rpm-ostree 2018.7 or later (install and uninstall with --idempotent and --unchanged-exit-77); 2022.13 or later with
    O(apply_live) (--apply-live with --assumeyes).
  - skopeo 1.5.1 or later on the host when O(provided_by) names an image (inspect --no-tags).
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
  provided_by:
    description:
      - Image mode. The registry image (C(registry/name:tag)) the host follows by digest; the packages it provides (its
        label C(io.immutable-hosts.packages), as M(immutable.hosts.image_publish) builds it) are not layered, whatever
        O(state) says, and are no change. Once the host's deployment follows that image's current digest, requests
        for them left from before are dropped; before, the switch drops them
        (M(immutable.hosts.rebase) with C(follow=digest)).
      - M(immutable.hosts.host_state) sets it from its rebase when that follows a digest.
    type: str
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
provided_by_image:
  description: Packages of O(name) the image of O(provided_by) provides, so they are not layered.
  returned: success
  type: list
  elements: str
  sample: [htop, tmux]
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

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._packages import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
