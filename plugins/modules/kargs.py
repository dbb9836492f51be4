#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: kargs
short_description: Manage the kernel arguments of an rpm-ostree host's next deployment, or check a bootc host's
version_added: 0.1.0
description:
  - Makes kernel arguments present, absent, or exactly a given list on the deployment that boots next (new
    rpm-ostree changes stack on it, so a staged update keeps its packages and gains the arguments).
  - Reads C(rpm-ostree status --json) once and the Boot Loader Specification entries; compares against the pending
    deployment's arguments; applies every change in a single C(rpm-ostree kargs) call with C(--replace),
    C(--delete-if-present) and C(--append-if-missing). A converged host sees no mutating command.
  - The C(ostree=) argument belongs to OSTree and is never touched.
  - On a host without rpm-ostree that bootc manages (an image-mode system), kernel arguments come with the image, in
    C(/usr/lib/bootc/kargs.d/*.toml), and bootc applies them when it stages the image. The next boot's arguments are
    compared all the same, so a converged host is no change (also in a drift check), and a change fails with the
    arguments to add or remove in the image's C(kargs.d). RV(image_kargs) lists what the image carries.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - rpm-ostree 2021.5 or later (kargs --append-if-missing, --delete-if-present and --unchanged-exit-77); on a host
    without rpm-ostree, bootc 1.3.0 or later (status --format=json with the deployment's stateroot).
options:
  args:
    description:
      - Kernel arguments, each C(key) or C(key=value), one per list item.
      - With O(state=present), C(key=value) replaces another value of the same key when the key has exactly one.
      - With O(state=absent), a bare C(key) removes every argument with that key; C(key=value) removes that exact one.
    type: list
    elements: str
    required: true
  state:
    description:
      - V(present) adds missing arguments, V(absent) removes them, V(exact) makes the arguments exactly O(args)
        (other than C(ostree=)).
    type: str
    choices: [present, absent, exact]
    default: present
notes:
  - The new arguments take effect at the next boot; RV(reboot_required) says so.
seealso:
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Disable mitigations and keep the console on serial
  immutable.hosts.kargs:
    args:
      - mitigations=off
      - console=ttyS0,115200
  become: true

- name: Drop quiet boot
  immutable.hosts.kargs:
    args: [rhgb, quiet]
    state: absent
  become: true

- name: Own the whole command line (except ostree=)
  immutable.hosts.kargs:
    args: [root=UUID=6f3b7f5e-1c8d-4f0e-9b44-2f7d1f1c9a10, rw, rhgb, quiet]
    state: exact
  become: true
"""

RETURN = r"""
kargs:
  description: The arguments of the next boot after the change (predicted in check mode), without C(ostree=).
  returned: success
  type: list
  elements: str
  sample: [root=UUID=6f3b, rw, mitigations=off]
image_kargs:
  description: On a bootc-only host, the arguments the next boot's image carries in C(kargs.d) (those for this
    architecture).
  returned: on a host without rpm-ostree that bootc manages
  type: list
  elements: str
  sample: [console=ttyS0,115200n8]
changes:
  description: What the call adds, removes and replaces.
  returned: success
  type: dict
  sample: {append: [mitigations=off], delete: [quiet], replace: []}
reboot_required:
  description: Whether the next boot differs from the running system.
  returned: success
  type: bool
  sample: true
reboot_reasons:
  description: Why a reboot is needed, for example V(staged-update), V(kargs-changed).
  returned: success
  type: list
  elements: str
  sample: [staged-update, kargs-changed]
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
  description: The deployment new changes stack on (the pending one after a change), as in C(ansible_facts.ostree.deployments).
  returned: success
  type: dict
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, kargs, --append-if-missing=mitigations=off]]
diff:
  description: Kernel arguments before and after, as lists.
  returned: success
  type: dict
  sample: {before: {kargs: [rw, quiet]}, after: {kargs: [rw, mitigations=off]}}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._kargs import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
