#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: ostree_facts
short_description: Gather facts about the OSTree deployments of an immutable host
version_added: 0.1.0
description:
  - Sets C(ansible_facts.ostree) with the backend managing the host (rpm-ostree, bootc or plain ostree), every
    deployment with its parsed origin or image, layered packages and overrides, the deployments that are booted,
    pending, staged, rollback and the one new changes stack on, the kernel arguments of the next boot, whether a
    reboot is pending and why, the automatic update policy, the busy transaction, the architecture and the
    hardware (Apple silicon, Mac VMs, the page size).
  - Reads state once, with one status call of the backend tool (C(rpm-ostree status --json),
    C(bootc status --format=json) or C(ostree admin status)). Kernel arguments come from the Boot Loader
    Specification entries in C(/boot/loader/entries) (and the ESP's for bootc's composefs backend); only a staged
    deployment, which has no entry before it is finalised, costs one more C(rpm-ostree kargs) call.
  - A plain OSTree host is read with C(ostree admin status --json) (ostree 2025.3 and later), else
    C(--skip-signatures) (2024.1 and later), else the plain text, so a commit that lost its signature does not stop
    fact gathering where ostree can skip the check. Where ostree names no origin (its JSON before 2026.1, or a
    container origin in the text) the deployment's origin file says what it follows.
  - On a host that was not booted through OSTree (no C(/run/ostree-booted)) it returns C(is_ostree=false) and does
    not fail.
  - Usable as a facts module in C(FACTS_MODULES) (C(ansible.builtin.setup) runs it during fact gathering).
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - On an OSTree host, one of rpm-ostree 2018.6 or later, bootc 0.1.13 or later, or ostree (admin status; 2024.1 or
    later reads past unsigned commits).
options:
  status_retries:
    description:
      - How often to retry a status call that failed because the rpm-ostree daemon was still starting (D-Bus
        activation timeout), one second apart, as rpm-ostree's own client does.
    type: int
    default: 10
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
notes:
  - Run with C(become=true) on hosts where C(/boot) is not readable by the connecting user; kernel arguments are then
    reported as C(null) rather than failing.
seealso:
  - name: rpm-ostree status
    description: The JSON document this module parses.
    link: https://coreos.github.io/rpm-ostree/
"""

EXAMPLES = r"""
- name: Gather OSTree facts
  immutable.hosts.ostree_facts:

- name: Reboot only when the next boot differs from the running system
  ansible.builtin.reboot:
  when: ansible_facts.ostree.reboot_required

- name: Show what rpm-ostree will layer on the next boot
  ansible.builtin.debug:
    msg: "{{ ansible_facts.ostree.merge.requested_packages }}"
  when: ansible_facts.ostree.is_ostree

- name: Gather OSTree facts together with the default facts
  # ansible.cfg: [defaults] facts_modules = ansible.builtin.setup, immutable.hosts.ostree_facts
  ansible.builtin.setup:
"""

RETURN = r"""
check_mode:
  description:
    - Whether the module ran in check mode. A play or block with C(check_mode=true) runs its tasks in check mode
      without setting C(ansible_check_mode) (only C(--check) does), so a role reads it here.
  returned: always
  type: bool
  sample: false
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    ostree:
      description: The OSTree state of the host.
      returned: always
      type: dict
      contains:
        is_ostree:
          description: Whether the host was booted through OSTree (C(/run/ostree-booted) exists).
          type: bool
          returned: always
          sample: true
        backend:
          description: The tool that reported the state, C(rpm-ostree), C(bootc), C(ostree), or C(none).
          type: str
          returned: always
          sample: rpm-ostree
        osname:
          description: The stateroot of the booted deployment.
          type: str
          returned: always
          sample: fedora
        architecture:
          description:
            - The architecture the booted deployment was built for, as RPM names it - from coreos-assembler's
              C(basearch), the image configuration of a container deployment, bootc's image architecture or the
              ref (C(fedora/42/x86_64/silverblue)); the machine's when the deployment does not say.
          type: str
          returned: always
          sample: aarch64
        oci_architecture:
          description: The same architecture as OCI image indexes name it.
          type: str
          returned: always
          sample: arm64
        health:
          description:
            - The last verdict of the boot-time health gate (role immutable.hosts.health), read from
              C(/var/lib/immutable-hosts/health/state.json); null when the gate never ran.
            - C(status) V(green) (every required check passed), V(red), V(unknown), or V(unreadable) (not JSON);
              C(deployment) the deployment checked (C(CHECKSUM.SERIAL)); C(checked_at); C(failures) and
              C(wanted_failures), the failing required and wanted checks; C(failed_boots) of C(max_failed_boots);
              C(action) what the gate did (V(none), V(reboot), V(rollback), V(rollback-failed));
              C(healthy_before) whether the deployment passed once before; C(last_rollback) (C(from), C(at),
              C(reason), C(failed_boots)) the last time the gate rolled back, or null.
          type: dict
          returned: on an OSTree host
          sample:
            status: green
            deployment: 1776c3e37c350ae16b5aa4da5d9baa716410dbdd63386866c5ffd1112485347f.0
            failures: []
            failed_boots: 0
            action: none
            last_rollback: null
        hardware:
          description:
            - What the host runs on, read from the kernel's files, whatever the backend (also on a host that is not
              an OSTree host).
            - C(apple_silicon) when the device tree's root C(compatible) strings (C(/sys/firmware/devicetree/base),
              else C(/proc/device-tree)) name an C(apple,...) machine; Macs have no DMI tables.
            - C(mac_vm) for an aarch64 guest whose DMI vendor (C(/sys/class/dmi/id/sys_vendor)) is a Mac hypervisor
              (Apple's Virtualization.framework, Parallels, VMware Fusion), named in C(hypervisor). A UTM/QEMU guest
              looks like any QEMU guest and is not reported.
            - C(machine) is C(uname -m); C(arch) is C(aarch64) on Apple silicon and Mac VMs, else the machine's;
              C(page_size) is the kernel's page size in bytes (16384 on Asahi kernels).
          type: dict
          returned: always
          sample:
            machine: aarch64
            arch: aarch64
            page_size: 16384
            compatible: ["apple,j314s", "apple,t6000", "apple,arm-platform"]
            apple_silicon: true
            mac_vm: false
            hypervisor: null
        deployments:
          description:
            - Every deployment in boot order (index 0 boots next).
            - Each has C(index), C(id), C(osname), C(checksum), C(serial), C(booted), C(staged), C(pending),
              C(rollback), C(pinned), C(origin) (the raw origin string) and C(origin_parsed) (kind C(refspec),
              C(container) or C(checksum), with remote and ref, or signature policy, transport, registry, repository,
              tag, digest and a normalised name), C(architecture), C(version), C(timestamp) and C(kargs).
            - With rpm-ostree also C(layered), C(base_checksum), C(requested_packages), C(packages) (active layered
              packages), C(inactive_requests), C(requested_local_packages), C(requested_base_removals),
              C(requested_base_local_replacements), C(requested_base_remote_replacements), C(base_removals),
              C(base_local_replacements), C(base_remote_replacements), C(regenerate_initramfs),
              C(finalization_locked), C(live_replaced), C(container_image_reference_digest).
            - With bootc also C(incompatible) (rpm-ostree layering makes bootc refuse to manage it),
              C(soft_reboot_capable) and C(backend) - C(ostree), or C(composefs), where C(checksum) is the image's
              fs-verity digest (the kernel command line's C(composefs=)), C(osname) is null (composefs has no
              stateroots) and C(composefs) holds C(verity), C(boot_type), C(bootloader), C(boot_digest) and
              C(missing_verity_allowed).
          type: list
          elements: dict
          returned: always
          sample:
            - index: 0
              osname: fedora
              checksum: 3a92051fc7a8a1e684f136f36a3d53135c3a8a3bce4c401e1d0f9f36c5565271
              serial: 0
              booted: false
              staged: true
              pending: true
              origin: fedora:fedora/41/x86_64/silverblue
              origin_parsed: {kind: refspec, remote: fedora, ref: fedora/41/x86_64/silverblue}
              requested_packages: [htop]
        booted:
          description: The booted deployment (an element of RV(ansible_facts.ostree.deployments)), or null.
          type: dict
          returned: always
        pending:
          description:
            - The deployment that boots next when it is not the booted one, or null; it may belong to another
              stateroot (C(ostree admin set-default), image-based upgrades), and then RV(ansible_facts.ostree.merge)
              is not it.
          type: dict
          returned: always
        staged:
          description: The staged deployment (finalised at shutdown), or null.
          type: dict
          returned: always
        rollback:
          description: The first deployment after the booted one, or null.
          type: dict
          returned: always
        merge:
          description: The deployment new rpm-ostree changes stack on (the first deployment of the booted osname).
          type: dict
          returned: always
        kargs:
          description: Kernel arguments of the deployment that boots next, or null when unreadable.
          type: list
          elements: str
          returned: always
          sample: [root=UUID=6f3b, rw, rhgb, quiet]
        reboot_required:
          description:
            - Whether a plain reboot boots something other than the running system.
            - False for a staged deployment whose finalization is locked (C(--lock-finalization), bootc's
              download-only), since a plain reboot discards it; see RV(ansible_facts.ostree.staged_locked).
          type: bool
          returned: always
          sample: true
        reboot_reasons:
          description:
            - Why a reboot is pending, any of C(staged-update), C(rollback-queued), C(stateroot-changed) (another
              stateroot boots next), C(origin-changed), C(layering-changed), C(kargs-changed).
          type: list
          elements: str
          returned: always
          sample: [staged-update, layering-changed]
        staged_locked:
          description:
            - Whether a staged deployment waits with its finalization locked. A plain reboot discards it; apply it
              with C(rpm-ostree finalize-deployment) (bootc - C(bootc upgrade --from-downloaded --apply)).
          type: bool
          returned: always
          sample: false
        staged_locked_reasons:
          description: What the locked staged deployment would change (C(finalization-locked) and the reasons above).
          type: list
          elements: str
          returned: always
          sample: [staged-update, finalization-locked, layering-changed]
        update_policy:
          description:
            - The automatic update settings. rpm-ostree - C(policy) (none, check, stage or apply), C(policy_valid),
              C(lock_layering), C(recommends), C(idle_exit_timeout), C(timer_enabled). bootc - C(timer_enabled).
          type: dict
          returned: when the backend is rpm-ostree or bootc
          sample: {policy: stage, policy_valid: true, lock_layering: false, timer_enabled: true}
        update_driver:
          description: The registered update driver (C(name), C(unit)), for example Zincati, or null.
          type: dict
          returned: always
        transaction:
          description: The running rpm-ostree transaction (C(method), C(sender), C(object_path)), or null when idle.
          type: dict
          returned: always
          sample: {method: PkgChange, sender: ":1.87", object_path: /org/projectatomic/rpmostree1/fedora}
        cached_update:
          description:
            - The update the backend found and cached, or null. rpm-ostree - C(version), C(checksum), C(rpm_diff),
              C(advisories) and more. bootc (C(bootc upgrade --check)) - C(origin), C(image), C(digest), C(version),
              C(timestamp), C(architecture).
          type: dict
          returned: always
commands:
  description: The commands the module ran, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json]]
"""


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._facts import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
