#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: update_policy
short_description: Set rpm-ostree's automatic update policy and its timer
version_added: 0.1.0
description:
  - Sets C(AutomaticUpdatePolicy), C(IdleExitTimeout) and C(LockLayering) in the C([Daemon]) group of
    C(/etc/rpm-ostreed.conf), keeping every other line and comment of the file, written atomically; then runs
    C(rpm-ostree reload) so the daemon reads it.
  - Enables or disables C(rpm-ostreed-automatic.timer), which applies the policy (the policy does nothing while the
    timer is off).
  - The diff is a unified diff of the file, plus the timer's state. A converged host sees no mutating command and no
    rpm-ostree call at all.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
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
    description: Enable (and start) or disable (and stop) C(rpm-ostreed-automatic.timer). Unset leaves it as it is.
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
"""

RETURN = r"""
settings:
  description: The C([Daemon]) settings after the run (predicted in check mode).
  returned: success
  type: dict
  sample: {policy: stage, idle_exit_timeout: 60, lock_layering: false, recommends: true}
timer_enabled:
  description: Whether C(rpm-ostreed-automatic.timer) is enabled after the run.
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

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import keyfile_edit, ostree, safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.runner import Runner, RunnerError

TIMER = "rpm-ostreed-automatic.timer"
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")


def make_runner():
    return Runner()


def read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def timer_state(runner):
    state = runner.run(["systemctl", "is-enabled", TIMER], check=False).stdout.strip()
    return state in ENABLED_STATES


def main():
    module = AnsibleModule(
        argument_spec=dict(
            policy=dict(type="str", choices=["none", "check", "stage", "apply"]),
            idle_exit_timeout=dict(type="int"),
            lock_layering=dict(type="bool"),
            timer_enabled=dict(type="bool"),
            path=dict(type="path", default="/etc/rpm-ostreed.conf"),
        ),
        required_one_of=[("policy", "idle_exit_timeout", "lock_layering", "timer_enabled")],
        supports_check_mode=True,
    )
    params = module.params
    if params["idle_exit_timeout"] is not None and params["idle_exit_timeout"] < 0:
        module.fail_json(msg="idle_exit_timeout is 0 (never exit) or a positive number of seconds")
    runner = make_runner()
    path = params["path"]
    try:
        before = read(path)
        values = {
            "AutomaticUpdatePolicy": params["policy"],
            "IdleExitTimeout": params["idle_exit_timeout"],
            "LockLayering": None if params["lock_layering"] is None else str(params["lock_layering"]).lower(),
        }
        current = ostree.parse_rpm_ostreed_conf(before)
        wanted = {
            "AutomaticUpdatePolicy": (current["policy"], params["policy"]),
            "IdleExitTimeout": (current["idle_exit_timeout"], params["idle_exit_timeout"]),
            "LockLayering": (current["lock_layering"], params["lock_layering"]),
        }
        to_set = {key: values[key] for key, (have, want) in wanted.items() if want is not None and have != want}
        after = keyfile_edit.set_values(before, "Daemon", to_set) if to_set else before
        file_changed = after != before
        timer_before = timer_after = None
        if params["timer_enabled"] is not None:
            timer_before = timer_state(runner)
            timer_after = params["timer_enabled"]
        timer_changed = timer_before is not None and timer_before != timer_after
        if not module.check_mode:
            if file_changed:
                safe_files.replace_file(path, after)
                runner.run(["rpm-ostree", "reload"])
            if timer_changed:
                runner.run(["systemctl", "enable" if timer_after else "disable", "--now", TIMER])
    except (OSError, RunnerError, ValueError, safe_files.UnsafePath) as exc:
        module.fail_json(msg="cannot set the update policy: %s" % exc, commands=runner.commands)
    diff = [{"before": before, "after": after, "before_header": path, "after_header": path}]
    if timer_changed:
        diff.append({"before": {"timer_enabled": timer_before}, "after": {"timer_enabled": timer_after}})
    module.exit_json(
        changed=file_changed or timer_changed,
        diff=diff,
        settings=ostree.parse_rpm_ostreed_conf(after),
        timer_enabled=timer_after,
        reboot_required=False,
        reboot_reasons=[],
        commands=runner.commands,
    )


if __name__ == "__main__":
    main()
