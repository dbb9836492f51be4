# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rpm-ostree's automatic updates: ``/etc/rpm-ostreed.conf`` edited line by line (other lines and comments kept) and
``rpm-ostreed-automatic.timer``.  :data:`UNIT` is the module immutable.hosts.update_policy.

A host without rpm-ostree that bootc manages (an image-mode system) has no daemon settings: its unattended updates
are ``bootc-fetch-apply-updates.timer`` (``bootc upgrade --apply``, which reboots into what it stages), so only
``timer_enabled`` applies there.

On either, a maintenance window (a systemd calendar expression that replaces the timer's own triggers) and an AC
power condition on the update service are drop-ins of their own under ``/etc/systemd/system``, written whole and
followed by one ``systemctl daemon-reload``.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader

TIMER = "rpm-ostreed-automatic.timer"
BOOTC_TIMER = "bootc-fetch-apply-updates.timer"
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
DAEMON_SETTINGS = ("policy", "idle_exit_timeout", "lock_layering")
UNIT_DIR = "/etc/systemd/system"
DROPIN = "50-immutable-hosts.conf"
DROPIN_MARKER = "# Managed by Ansible (immutable.hosts.update_policy)."


def dropin_paths(timer: str) -> dict:
    """The drop-ins of the update timer (the window) and of the service it starts (the AC power condition)."""
    service = timer[: -len(".timer")] + ".service"
    return {"window": "%s/%s.d/%s" % (UNIT_DIR, timer, DROPIN), "on_ac_power": "%s/%s.d/%s" % (UNIT_DIR, service, DROPIN)}


def render_dropin(kind: str, value) -> Optional[str]:
    """A drop-in's text, or None for none: the window replaces the timer's triggers (OnBootSec, OnUnitInactiveSec and
    any OnCalendar of the distribution's unit are reset first); AC power is a condition of the service."""
    if kind == "window":
        if not value:
            return None
        return "%s\n[Timer]\nOnBootSec=\nOnUnitInactiveSec=\nOnCalendar=\nOnCalendar=%s\n" % (DROPIN_MARKER, value)
    return "%s\n[Unit]\nConditionACPower=true\n" % DROPIN_MARKER if value else None


def plan_dropins(current: dict, params: dict, timer: str) -> dict:
    """{path: text or None (remove)} for the drop-ins that differ from what ``window`` and ``on_ac_power`` ask."""
    changes = {}
    for kind, path in dropin_paths(timer).items():
        if params[kind] is None:
            continue
        wanted, have = render_dropin(kind, params[kind]), current.get(path)
        if have is not None and not have.startswith(DROPIN_MARKER):
            raise HostsError("%s exists and was not written by this module; remove it or merge it into your own drop-in" % path)
        if have != wanted:
            changes[path] = wanted
    return changes


def with_dropins(plan: Plan, current: dict, params: dict) -> Plan:
    """The plan of the daemon settings and the timer, with the window and AC power drop-ins."""
    changes = plan_dropins(current, params, plan.result["timer"])
    diff = list(plan.diff) + [
        {"before": current.get(path) or "", "after": text or "", "before_header": path, "after_header": path}
        for path, text in sorted(changes.items())
    ]
    result = dict(plan.result)
    for kind, path in dropin_paths(plan.result["timer"]).items():
        text = changes[path] if path in changes else current.get(path)
        if kind == "window":
            result["window"] = text.rsplit("OnCalendar=", 1)[1].strip() if text else None
        else:
            result["on_ac_power"] = bool(text)
    return Plan(changed=plan.changed or bool(changes), diff=diff, actions=dict(plan.actions, dropins=changes), result=result)


def timer_state(host, timer: str = TIMER) -> bool:
    state = host.run(["systemctl", "is-enabled", timer], check=False).stdout.strip()
    return state in ENABLED_STATES


def plan_bootc_timer(current_timer: Optional[bool], params: dict) -> Plan:
    """A bootc host: only its update timer."""
    wanted = params["timer_enabled"]
    changed = current_timer is not None and current_timer != wanted
    return Plan(
        changed=changed,
        diff=[{"before": {"timer_enabled": current_timer}, "after": {"timer_enabled": wanted}}] if wanted is not None else [],
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
        window=dict(type="str"),
        on_ac_power=dict(type="bool"),
        path=dict(type="path", default="/etc/rpm-ostreed.conf"),
    )
    MODULE_OPTIONS = dict(
        required_one_of=[("policy", "idle_exit_timeout", "lock_layering", "timer_enabled", "window", "on_ac_power")]
    )

    def desired(self, params: dict, _host) -> dict:
        if params["idle_exit_timeout"] is not None and params["idle_exit_timeout"] < 0:
            raise HostsError("idle_exit_timeout is 0 (never exit) or a positive number of seconds")
        if params["window"]:
            params["window"] = check_value(params["window"].strip(), "window", HostsError)
        return params

    def read(self, host, desired: dict) -> tuple:
        if reader.bootc_only(host):
            given = [key for key in DAEMON_SETTINGS if desired[key] is not None]
            if given:
                raise HostsError(
                    "%s %s rpm-ostreed.conf, and this host has no rpm-ostree: bootc manages it, and its unattended "
                    "updates are %s alone (timer_enabled)"
                    % (", ".join(given), "is a setting of" if len(given) == 1 else "are settings of", BOOTC_TIMER)
                )
            kind, text, timer = "bootc", None, timer_state(host, BOOTC_TIMER) if desired["timer_enabled"] is not None else None
        else:
            kind, text = "rpm-ostree", host.read_text(desired["path"]) or ""
            timer = timer_state(host) if desired["timer_enabled"] is not None else None
        if desired["window"]:
            # systemd's own parser says whether the window is a calendar expression (a read: in check mode too)
            parsed = host.run(["systemd-analyze", "calendar", "--", desired["window"]], check=False)
            if parsed.rc != 0:
                raise HostsError(
                    "window %r is not a systemd calendar expression (systemd.time(7)): %s"
                    % (desired["window"], (parsed.stderr or parsed.stdout).strip())
                )
        paths = dropin_paths(BOOTC_TIMER if kind == "bootc" else TIMER).values()
        return kind, text, timer, {path: host.read_text(path) for path in paths}

    def plan(self, current: tuple, desired: dict) -> Plan:
        if current[0] == "bootc":
            return with_dropins(plan_bootc_timer(current[2], desired), current[3], desired)
        return with_dropins(plan_policy(current[1], current[2], desired), current[3], desired)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        if plan.actions["text"] is not None:
            files.replace_file(host.path(desired["path"]), plan.actions["text"])
            host.run(["rpm-ostree", "reload"])
        for path, text in sorted(plan.actions["dropins"].items()):
            if text is None:
                files.remove_file(host.path(path))
            else:
                files.replace_file(host.path(path), text, 0o644, create_directory=0o755)
        if plan.actions["dropins"]:
            host.run(["systemctl", "daemon-reload"])
        if plan.actions["timer"] is not None:
            host.run(["systemctl", "enable" if plan.actions["timer"] else "disable", "--now", plan.result["timer"]])


UNIT = UpdatePolicyUnit()
