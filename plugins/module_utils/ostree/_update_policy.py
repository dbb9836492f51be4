# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rpm-ostree's automatic updates: ``/etc/rpm-ostreed.conf`` edited line by line (other lines and comments kept) and
``rpm-ostreed-automatic.timer``.  :data:`UNIT` is the module immutable.hosts.update_policy.

A host without rpm-ostree that bootc manages (an image-mode system) has no daemon settings: its unattended updates
are ``bootc-fetch-apply-updates.timer`` (``bootc upgrade --apply``, which reboots into what it stages), so only
``timer_enabled`` applies there.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree

TIMER = "rpm-ostreed-automatic.timer"
BOOTC_TIMER = "bootc-fetch-apply-updates.timer"
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
DAEMON_SETTINGS = ("policy", "idle_exit_timeout", "lock_layering")


def timer_state(host, timer: str = TIMER) -> bool:
    state = host.run(["systemctl", "is-enabled", timer], check=False).stdout.strip()
    return state in ENABLED_STATES


def backend(host) -> str:
    """``rpm-ostree`` where it is installed; ``bootc`` on an OSTree host that bootc alone manages."""
    if not host.which("rpm-ostree") and host.which("bootc") and host.exists("/run/ostree-booted"):
        return "bootc"
    return "rpm-ostree"


def plan_bootc_timer(current_timer: bool, params: dict) -> Plan:
    """A bootc host: only its update timer."""
    wanted = params["timer_enabled"]
    changed = current_timer != wanted
    return Plan(
        changed=changed,
        diff=[{"before": {"timer_enabled": current_timer}, "after": {"timer_enabled": wanted}}],
        actions={"text": None, "timer": wanted if changed else None},
        result={
            "backend": "bootc",
            "timer": BOOTC_TIMER,
            "settings": None,
            "timer_enabled": wanted,
            "reboot_required": False,
            "reboot_reasons": [],
        },
    )


def plan_policy(text: str, current_timer, params: dict) -> Plan:
    """From the file's text and the timer's state to the wanted settings: a line edit and an enable or disable."""
    values = {
        "AutomaticUpdatePolicy": params["policy"],
        "IdleExitTimeout": params["idle_exit_timeout"],
        "LockLayering": None if params["lock_layering"] is None else str(params["lock_layering"]).lower(),
    }
    current = ostree.parse_rpm_ostreed_conf(text)
    wanted = {
        "AutomaticUpdatePolicy": (current["policy"], params["policy"]),
        "IdleExitTimeout": (current["idle_exit_timeout"], params["idle_exit_timeout"]),
        "LockLayering": (current["lock_layering"], params["lock_layering"]),
    }
    to_set = {key: values[key] for key, (have, want) in wanted.items() if want is not None and have != want}
    after = keyfile.set_values(text, "Daemon", to_set) if to_set else text
    timer_after = params["timer_enabled"]
    timer_changed = current_timer is not None and current_timer != timer_after
    path = params["path"]
    diff = [{"before": text, "after": after, "before_header": path, "after_header": path}]
    if timer_changed:
        diff.append({"before": {"timer_enabled": current_timer}, "after": {"timer_enabled": timer_after}})
    return Plan(
        changed=after != text or timer_changed,
        diff=diff,
        actions={"text": after if after != text else None, "timer": timer_after if timer_changed else None},
        result={
            "backend": "rpm-ostree",
            "timer": TIMER,
            "settings": ostree.parse_rpm_ostreed_conf(after),
            "timer_enabled": timer_after,
            "reboot_required": False,
            "reboot_reasons": [],
        },
    )


class UpdatePolicyUnit:
    ARGUMENT_SPEC = dict(
        policy=dict(type="str", choices=list(ostree.UPDATE_POLICIES)),
        idle_exit_timeout=dict(type="int"),
        lock_layering=dict(type="bool"),
        timer_enabled=dict(type="bool"),
        path=dict(type="path", default="/etc/rpm-ostreed.conf"),
    )
    MODULE_OPTIONS = dict(required_one_of=[("policy", "idle_exit_timeout", "lock_layering", "timer_enabled")])

    def desired(self, params: dict, _host) -> dict:
        if params["idle_exit_timeout"] is not None and params["idle_exit_timeout"] < 0:
            raise HostsError("idle_exit_timeout is 0 (never exit) or a positive number of seconds")
        return params

    def read(self, host, desired: dict) -> tuple:
        if backend(host) == "bootc":
            given = [key for key in DAEMON_SETTINGS if desired[key] is not None]
            if given:
                raise HostsError(
                    "%s %s rpm-ostreed.conf, and this host has no rpm-ostree: bootc manages it, and its unattended "
                    "updates are %s alone (timer_enabled)"
                    % (", ".join(given), "is a setting of" if len(given) == 1 else "are settings of", BOOTC_TIMER)
                )
            return "bootc", None, timer_state(host, BOOTC_TIMER)
        text = host.read_text(desired["path"]) or ""
        return "rpm-ostree", text, timer_state(host) if desired["timer_enabled"] is not None else None

    def plan(self, current: tuple, desired: dict) -> Plan:
        if current[0] == "bootc":
            return plan_bootc_timer(current[2], desired)
        return plan_policy(current[1], current[2], desired)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        if plan.actions["text"] is not None:
            files.replace_file(host.path(desired["path"]), plan.actions["text"])
            host.run(["rpm-ostree", "reload"])
        if plan.actions["timer"] is not None:
            host.run(["systemctl", "enable" if plan.actions["timer"] else "disable", "--now", plan.result["timer"]])


UNIT = UpdatePolicyUnit()
