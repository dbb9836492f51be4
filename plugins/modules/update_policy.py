#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: update_policy
short_description: Set rpm-ostree's automatic update policy and its timer, or bootc's update timer
version_added: 0.1.0
description:
  - Sets C(AutomaticUpdatePolicy), C(IdleExitTimeout) and C(LockLayering) in the C([Daemon]) group of
    C(/etc/rpm-ostreed.conf), keeping every other line and comment of the file, written atomically; then runs
    C(rpm-ostree reload) so the daemon reads it.
  - Enables or disables C(rpm-ostreed-automatic.timer), which applies the policy (the policy does nothing while the
    timer is off).
  - The diff is a unified diff of the file, plus the timer's state. A converged host sees no mutating command and no
    rpm-ostree call at all.
  - On a host without rpm-ostree that bootc manages (an image-mode system), there is no daemon configuration. Only
    O(timer_enabled) and the timer's window and conditions apply, to C(bootc-fetch-apply-updates.timer), which runs
    C(bootc upgrade --apply) and so B(reboots) into each update it stages. The other options are refused there.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - rpm-ostree 2018.8 or later (AutomaticUpdatePolicy=stage, rpm-ostree reload, rpm-ostreed-automatic.timer); 2023.2 or
    later for O(lock_layering), 2023.4 or later for O(policy=apply). On a host without rpm-ostree, bootc 0.1.6 or later
    (bootc-fetch-apply-updates.timer).
  - systemd 243 or later and /usr/bin/python3 for O(skip_metered) and O(skip_user_sessions) (ExecCondition=, the update
    gate).
options:
  policy:
    description:
      - V(none) never updates on its own; V(check) downloads metadata to show available updates; V(stage) also
        downloads and stages the update for the next boot; V(apply) stages it and B(reboots).
      - Unset leaves the setting as it is.
    type: str
    choices: [none, check, stage, apply]
  idle_exit_timeout:
    description: Seconds the daemon stays up when idle (C(0) keeps it running). Unset leaves it as it is.
    type: int
  lock_layering:
    description: Forbid package layering and overrides on this host. Unset leaves it as it is.
    type: bool
  timer_enabled:
    description:
      - Enable (and start) or disable (and stop) C(rpm-ostreed-automatic.timer), or on a bootc-only host
        C(bootc-fetch-apply-updates.timer). Unset leaves it as it is.
    type: bool
  window:
    description:
      - A maintenance window, a systemd calendar expression (C(systemd.time(7)), for example C(Sat 02:00) or
        C(Mon..Fri 22:00)). The update timer fires then and only then. A drop-in of the timer,
        C(50-immutable-hosts.conf) under C(/etc/systemd/system/TIMER.d/), resets the distribution's triggers
        (C(OnBootSec), C(OnUnitInactiveSec), C(OnCalendar)). The expression is checked with C(systemd-analyze calendar)
        on the host, in check mode too.
      - An empty string removes the drop-in, back to the distribution's schedule. Unset leaves it as it is.
    type: str
  on_ac_power:
    description:
      - V(true) lets the update service run only on AC power (C(ConditionACPower=true) in a drop-in of the service the
        timer starts), so a laptop on battery skips an unattended update. V(false) removes that drop-in. Unset leaves
        it as it is.
    type: bool
  skip_metered:
    description:
      - V(true) skips an unattended update while the connection is metered, as NetworkManager says (its C(Metered)
        property is yes or guess-yes; without NetworkManager nothing counts as metered). V(false) removes that gate.
        Unset leaves it as it is.
      - The gate is a small program, C(/usr/local/libexec/immutable-hosts/update-gate), named in an C(ExecCondition=)
        of the service's drop-in; systemd runs it before the update, and its exit status 1 skips the update without
        failing the unit, with the reason in the journal. It is installed while a gate needs it and removed after.
    type: bool
  skip_user_sessions:
    description:
      - V(true) skips an unattended update while a local user session is active (a logind session of class C(user)
        that is not remote, active or online; an SSH login does not count). V(false) removes that gate. Unset leaves
        it as it is. The same program as O(skip_metered).
    type: bool
  path:
    description: The daemon configuration file.
    type: path
    default: /etc/rpm-ostreed.conf
notes:
  - Requires C(become=true).
  - For a deterministic run over a fleet, set V(none) or disable the timer first, so no update is staged beneath the
    playbook.
seealso:
  - module: immutable.hosts.ostree_facts
"""

EXAMPLES = r"""
- name: Stage updates automatically; the user reboots when it suits them
  immutable.hosts.update_policy:
    policy: stage
    timer_enabled: true
  become: true

- name: Nothing moves under the playbook
  immutable.hosts.update_policy:
    policy: none
    timer_enabled: false
  become: true

- name: An image-mode (bootc) host applies its updates unattended, rebooting into them
  immutable.hosts.update_policy:
    timer_enabled: true
  become: true

- name: Laptops update on Saturday night, and only on AC power
  immutable.hosts.update_policy:
    policy: stage
    timer_enabled: true
    window: Sat 02:00
    on_ac_power: true
  become: true

- name: bootc laptops apply (and reboot) only on AC power, off metered connections and with nobody logged in
  immutable.hosts.update_policy:
    timer_enabled: true
    on_ac_power: true
    skip_metered: true
    skip_user_sessions: true
  become: true
"""

RETURN = r"""
backend:
  description: What manages the host's updates, C(rpm-ostree) or C(bootc) (a host without rpm-ostree).
  returned: success
  type: str
  sample: rpm-ostree
timer:
  description: The update timer of that backend.
  returned: success
  type: str
  sample: rpm-ostreed-automatic.timer
settings:
  description: The C([Daemon]) settings after the run (predicted in check mode); null on a bootc host.
  returned: success
  type: dict
  sample: {policy: stage, idle_exit_timeout: 60, lock_layering: false, recommends: true}
window:
  description: The maintenance window of the update timer after the run, or null for the distribution's schedule.
  returned: success
  type: str
  sample: Sat 02:00
on_ac_power:
  description: Whether the update service runs only on AC power after the run.
  returned: success
  type: bool
  sample: true
skip_metered:
  description: Whether the update service waits while the connection is metered, after the run.
  returned: success
  type: bool
  sample: true
skip_user_sessions:
  description: Whether the update service waits while a local user session is active, after the run.
  returned: success
  type: bool
  sample: false
timer_enabled:
  description: Whether the update timer is enabled after the run.
  returned: when O(timer_enabled) is set
  type: bool
  sample: true
reboot_required:
  description: Always false; the policy takes effect without a reboot.
  returned: success
  type: bool
  sample: false
reboot_reasons:
  description: Always empty.
  returned: success
  type: list
  elements: str
  sample: []
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/systemctl, is-enabled, rpm-ostreed-automatic.timer], [/usr/bin/rpm-ostree, reload]]
diff:
  description: A unified diff of the file and the timer state.
  returned: success
  type: list
  elements: dict
"""


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._update_policy import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
