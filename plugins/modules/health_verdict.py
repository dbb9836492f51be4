#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: health_verdict
short_description: Wait for the on-host health gate's verdict on the deployment a host rebooted into
version_added: 0.3.0
description:
  - Reads the verdict of the boot-time health gate that the role immutable.hosts.health installs
    (C(/var/lib/immutable-hosts/health/state.json)) and the booted deployment, and says what the gate made of the
    deployment the host booted after an update from O(before) (RV(outcome)).
  - A gate that fails a new deployment reboots the host, to try again and then into the rollback. With O(timeout),
    the task asks again every few seconds, through those reboots, until the verdict is final or the time is up; the
    host being unreachable for a while is expected then.
  - Reads only; it never changes the host.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - On an OSTree host, one of rpm-ostree 2018.6 or later, bootc 0.1.13 or later, or ostree (admin status; 2024.1 or
    later reads past unsigned commits).
options:
  before:
    description:
      - The deployment (C(CHECKSUM.SERIAL)) the host ran before the update. Without it, the verdict is the gate's on
        the booted deployment.
    type: str
  previous_rollback:
    description:
      - The deployment the gate's last rollback before the update was from (C(health.last_rollback.from) of
        C(ansible_facts.ostree)), so that an old rollback is not taken for one of this update.
    type: str
  timeout:
    description: Seconds to keep asking until the verdict is final; V(0) reads once.
    type: int
    default: 0
seealso:
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Read the gate's verdict before the update
  immutable.hosts.health_verdict:
  register: gate_before

- name: Reboot into the staged update
  ansible.builtin.reboot:

- name: Wait until the gate passed the new deployment, or rolled it back
  immutable.hosts.health_verdict:
    before: "{{ ansible_facts.ostree.booted.checksum }}.{{ ansible_facts.ostree.booted.serial }}"
    previous_rollback: "{{ (gate_before.health.last_rollback | default({}, true)).from | default(omit, true) }}"
    timeout: 600
  register: gate
  failed_when: gate.outcome != 'green'
"""

RETURN = r"""
outcome:
  description:
    - V(green) the new deployment passed every required check; V(red) it failed and the gate does nothing more (the
      deployment passed once before, or there is no rollback); V(rolled-back) the gate rolled it back and the host
      runs O(before) again; V(pending) no final verdict yet; V(no-gate) the host has no gate's state.
  returned: success
  type: str
  sample: green
final:
  description: Whether RV(outcome) is final.
  returned: success
  type: bool
  sample: true
booted:
  description: The booted deployment, C(CHECKSUM.SERIAL).
  returned: success
  type: str
  sample: 1776c3e37c350ae16b5aa4da5d9baa716410dbdd63386866c5ffd1112485347f.0
health:
  description: The gate's state, as C(ansible_facts.ostree.health) reports it, or null without a gate.
  returned: success
  type: dict
attempts:
  description: How many times the task asked, with O(timeout).
  returned: success
  type: int
  sample: 4
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._health import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
