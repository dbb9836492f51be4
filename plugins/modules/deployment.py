#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: deployment
short_description: Upgrade, roll back, pin and clean up the deployments of an rpm-ostree or bootc host
version_added: 0.1.0
description:
  - Checks for, downloads or stages an upgrade; queues the rollback deployment; pins and unpins deployments by
    role or index; cleans up pending and rollback deployments and caches.
  - Declarative where it can be. O(pin) and O(unpin) describe a state. O(rollback) is satisfied once a rollback
    is queued. O(upgrade=stage) asks C(rpm-ostree upgrade --check) first, so a host without updates sees no
    transaction.
  - Reads C(rpm-ostree status --json) once. It waits on a busy daemon and respects a registered update driver
    (see O(bypass_driver)).
  - On a host without rpm-ostree that bootc manages (an image-mode system), the same options are bootc's. O(upgrade)
    runs C(bootc upgrade --check) (the update is the booted entry's C(cachedUpdate)), then C(bootc upgrade) or
    C(bootc upgrade --download-only) (staged with bootc's C(downloadOnly), which a plain reboot does not apply;
    O(lock_finalization) asks for the same). O(upgrade=stage) on an update that was only downloaded unlocks it
    without fetching it again, so a fleet can download during the day and stage it in a window. O(rollback) is
    C(bootc rollback). O(pin), O(unpin) and O(cleanup) are refused there.
  - O(finalize) applies a staged deployment that waits with its finalization locked, which means rebooting into it;
    see O(finalize) for how the task comes back.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - rpm-ostree 2019.4 or later (upgrade --lock-finalization, finalize-deployment), 2021.2 or later with
    O(bypass_driver); ostree 2019.3 or later for O(pin) and O(unpin) (admin pin with several indexes).
  - On a host without rpm-ostree, bootc 0.1.13 or later; bootc 1.12.0 or later for O(upgrade=download_only),
    O(lock_finalization) and O(finalize), 1.7.0 or later for O(soft_reboot).
  - systemd-run (systemd) on the host for O(finalize).
options:
  upgrade:
    description:
      - V(check) reports whether an update is available and what it is, changing nothing (the answer is in
        RV(update_available) and RV(update)).
      - V(stage) stages the update for the next boot.
      - V(download_only) downloads it without deploying.
      - Unset does not upgrade.
    type: str
    choices: [check, stage, download_only]
  rollback:
    description:
      - Make the rollback deployment boot next (C(rpm-ostree rollback)). A staged deployment is cleaned up first, as
        rpm-ostree requires. Once a rollback is queued, running again changes nothing; after the reboot it is an
        action again.
    type: bool
    default: false
  pin:
    description: Deployments to keep forever, by role (V(booted), V(pending), V(rollback)) or by index.
    type: list
    elements: str
    default: []
  unpin:
    description: Deployments to stop keeping, by role or index.
    type: list
    elements: str
    default: []
  cleanup:
    description:
      - V(pending) removes unpinned deployments that would boot before the booted one (a staged update included),
        V(rollback) unpinned ones after it; both change the host only when such deployments exist.
      - V(base) and V(repomd) prune temporary data and cached metadata. They do not change any deployment, so they
        run whenever listed (except in check mode) and never report a change.
    type: list
    elements: str
    choices: [pending, rollback, base, repomd]
    default: []
  lock_finalization:
    description: Stage the upgrade locked (C(--lock-finalization)), so a plain reboot does not apply it.
    type: bool
    default: false
  finalize:
    description:
      - Apply the staged deployment that waits with its finalization locked (O(lock_finalization), bootc's
        download-only update, an update driver's locked deployment), and reboot into it. This is how a fleet that
        downloaded during the day applies the update in a maintenance window.
      - With rpm-ostree it is C(rpm-ostree finalize-deployment CHECKSUM), naming the base checksum this run read, so a
        deployment staged in the meantime is never applied. With bootc alone it is
        C(bootc upgrade --from-downloaded --apply).
      - The command starts in a transient systemd unit three seconds after the module returned, and the task waits
        until the host is back with a new boot ID (at most O(reboot_timeout) seconds), then checks that it booted the
        finalized deployment. A finalize that fails leaves the host up and fails the task with the unit's journal.
      - Nothing staged, or a staged deployment that is not locked (a plain reboot applies it), is no change.
      - It needs a task of its own.
    type: bool
    default: false
  soft_reboot:
    description:
      - With O(finalize) on a host bootc alone manages, C(bootc upgrade --soft-reboot=auto), a soft reboot (systemd
        restarts userspace into the new deployment, the kernel stays) where the new deployment allows one (the
        facts' C(soft_reboot_capable)), a reboot otherwise. The task then waits for either. Refused with rpm-ostree,
        whose C(finalize-deployment) always reboots.
    type: bool
    default: false
  reboot_timeout:
    description: With O(finalize), how many seconds the task waits for the host to come back.
    type: int
    default: 900
notes:
  - C(rpm-ostree upgrade --check) is documented upstream as possibly unreliable; its exit code 77 (nothing new) is
    what this module reads.
seealso:
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Is there an update?
  immutable.hosts.deployment:
    upgrade: check
  register: update

- name: Stage it and keep today's deployment around
  immutable.hosts.deployment:
    upgrade: stage
    pin: [booted]
  become: true

- name: Go back to the previous deployment at the next boot
  immutable.hosts.deployment:
    rollback: true
  become: true

- name: Drop a staged update and old rollbacks
  immutable.hosts.deployment:
    cleanup: [pending, rollback]
  become: true

- name: During the day, download the update without applying it (a bootc host's downloadOnly)
  immutable.hosts.deployment:
    upgrade: download_only
  become: true

- name: In the maintenance window, let the next boot apply what was downloaded
  immutable.hosts.deployment:
    upgrade: stage
  become: true

- name: Stage the update locked during the day, so a plain reboot does not apply it
  immutable.hosts.deployment:
    upgrade: stage
    lock_finalization: true
  become: true

- name: In the window, apply it now and come back once the host booted it
  immutable.hosts.deployment:
    finalize: true
    reboot_timeout: 1200
  become: true
"""

RETURN = r"""
update_available:
  description: Whether C(rpm-ostree upgrade --check) (or C(bootc upgrade --check)) found an update.
  returned: when O(upgrade) is set
  type: bool
  sample: true
update:
  description:
    - The update rpm-ostree found (version, checksum, origin, rpm diff, advisories), or null.
    - With bootc, the image's C(digest), C(version), C(timestamp), C(architecture) and reference (C(image)).
  returned: when O(upgrade) is set
  type: dict
pinned:
  description: Indexes of the pinned deployments after the run (predicted in check mode).
  returned: success
  type: list
  elements: int
  sample: [1]
removed:
  description: Indexes (before the run) of the deployments cleanup removed.
  returned: success
  type: list
  elements: int
  sample: [0]
reboot_required:
  description: Whether the next boot differs from the running system.
  returned: success
  type: bool
  sample: true
reboot_reasons:
  description: Why a reboot is needed, for example V(staged-update), V(rollback-queued).
  returned: success
  type: list
  elements: str
  sample: [rollback-queued]
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
  description: The deployment that boots next after the run.
  returned: success, with rpm-ostree
  type: dict
finalized:
  description:
    - The locked staged deployment O(finalize) applied (C(checksum), C(version); with bootc also C(digest)), or null
      when there was none.
  returned: when O(finalize) is set
  type: dict
  sample: {checksum: b8eb4a426765983e1998d31facd5cccd8975e0b0ea9a97298fcc7e5f80a76821, version: 41.20241110.0}
rebooting:
  description: Whether the run started the finalize and its reboot.
  returned: when O(finalize) changed the host
  type: bool
  sample: true
rebooted:
  description: Whether the host came back with a new boot ID after the finalize.
  returned: when O(finalize) changed the host
  type: bool
  sample: true
boot_id:
  description: The boot ID before the finalize's reboot.
  returned: when O(finalize) changed the host
  type: str
  sample: 0b3c1f4e-5a77-4c0e-9d55-2f4bb8a1c2d3
finalize_unit:
  description: The transient systemd unit the finalize command ran in (its journal keeps what it said).
  returned: when O(finalize) changed the host
  type: str
  sample: immutable-hosts-finalize-1764942000.service
soft_reboots:
  description: With O(soft_reboot), systemd's count of soft reboots before the finalize (C(SoftRebootsCount)).
  returned: when O(finalize) changed the host and O(soft_reboot) is set
  type: int
  sample: 0
booted:
  description: The deployment the host booted after the finalize (C(checksum), C(version)).
  returned: when O(finalize) changed the host
  type: dict
elapsed:
  description: Seconds the task waited for the host to come back.
  returned: when O(finalize) changed the host
  type: int
  sample: 48
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, upgrade, --check]]
diff:
  description: Deployments (index, checksum, version, pinned) before and after.
  returned: success
  type: dict
"""


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._deployments import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
