#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: initramfs
short_description: Regenerate an rpm-ostree host's initramfs on the client, with dracut arguments and /etc files
version_added: 0.3.0
description:
  - Turns client-side initramfs regeneration on or off (C(rpm-ostree initramfs --enable [--arg=...]), C(--disable))
    and sets the files below C(/etc) copied into the initramfs (C(rpm-ostree initramfs-etc --track/--untrack)), on
    the deployment that boots next, stacked on what is pending there.
  - Reads C(rpm-ostree status --json) once. C(rpm-ostree initramfs --enable) fails when regeneration is on already, so
    it runs only for a real change; the tracked files change in one C(initramfs-etc) call. A converged host sees no
    mutating command.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - rpm-ostree 2022.2 or later for O(etc) (the initramfs-etc command); O(regenerate) and O(args) alone work with older
    releases.
options:
  regenerate:
    description:
      - V(true) regenerates the initramfs on the host (for example to add C(tpm2-tss) for LUKS unlocking with a TPM);
        V(false) returns to the image's own initramfs. Unset leaves it as it is (but O(args) imply V(true)).
    type: bool
  args:
    description:
      - The dracut arguments of the regenerated initramfs (C(--add=tpm2-tss), C(--force-add=fido2)), one per item;
        they replace the current ones. An empty list clears them.
    type: list
    elements: str
  etc:
    description:
      - Files below C(/etc) copied into the initramfs at each deployment (C(/etc/crypttab), C(/etc/vconsole.conf)),
        absolute paths.
    type: list
    elements: str
  etc_exact:
    description: Make O(etc) the whole list of tracked files (untrack the others) instead of adding to it.
    type: bool
    default: false
notes:
  - Regeneration and tracked files take effect at the next boot; RV(reboot_required) says so, with C(layering-changed)
    among the reasons.
  - bootc refuses to upgrade a host with client-side changes like these; on image-mode hosts, build them into the image.
seealso:
  - module: immutable.hosts.kargs
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Unlock LUKS with the TPM at boot
  immutable.hosts.initramfs:
    regenerate: true
    args: [--add=tpm2-tss]
    etc: [/etc/crypttab]
  become: true

- name: Back to the image's initramfs
  immutable.hosts.initramfs:
    regenerate: false
    etc: []
    etc_exact: true
  become: true
"""

RETURN = r"""
initramfs:
  description: Regeneration, its dracut arguments and the tracked files of the next boot (predicted in check mode).
  returned: success
  type: dict
  sample: {regenerate: true, args: [--add=tpm2-tss], etc: [/etc/crypttab]}
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
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, initramfs, --enable, --arg=--add=tpm2-tss]]
diff:
  description: Regeneration, arguments and tracked files before and after.
  returned: success
  type: dict
  sample: {before: {regenerate: false, args: [], etc: []}, after: {regenerate: true, args: [--add=tpm2-tss], etc: []}}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._initramfs import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
