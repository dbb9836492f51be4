# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""rpm-ostree's automatic updates: ``/etc/rpm-ostreed.conf`` edited line by line (other lines and comments kept) and
``rpm-ostreed-automatic.timer``.  :data:`UNIT` is the module immutable.hosts.update_policy.

A host without rpm-ostree that bootc manages (an image-mode system) has no daemon settings: its unattended updates
are ``bootc-fetch-apply-updates.timer`` (``bootc upgrade --apply``, which reboots into what it stages), so only
``timer_enabled`` applies there.

On either, a maintenance window (a systemd calendar expression that replaces the timer's own triggers) and the
conditions of the update service (AC power; not on a metered connection, not while a local user session is active,
through the gate program of ``_update_gate``) are drop-ins of their own under ``/etc/systemd/system``, written whole
and followed by one ``systemctl daemon-reload``.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import sys
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _update_gate as update_gate

TIMER = "rpm-ostreed-automatic.timer"
BOOTC_TIMER = "bootc-fetch-apply-updates.timer"
ENABLED_STATES = ("enabled", "enabled-runtime", "static", "alias", "indirect", "generated")
DAEMON_SETTINGS = ("policy", "idle_exit_timeout", "lock_layering")
UNIT_DIR = "/etc/systemd/system"
DROPIN = "50-immutable-hosts.conf"
DROPIN_MARKER = "# Managed by Ansible (immutable.hosts.update_policy)."


SERVICE_CONDITIONS = ("on_ac_power", "skip_metered", "skip_user_sessions")
PYTHON = "/usr/bin/python3"


def dropin_paths(timer: str) -> dict:
    """The drop-ins of the update timer (the window) and of the service it starts (AC power, the update gate)."""
    service = timer[: -len(".timer")] + ".service"
    return {"window": "%s/%s.d/%s" % (UNIT_DIR, timer, DROPIN), "service": "%s/%s.d/%s" % (UNIT_DIR, service, DROPIN)}


def render_window(value: Optional[str]) -> Optional[str]:
    """The timer's drop-in, or None for none: the window replaces the timer's triggers (OnBootSec, OnUnitInactiveSec
    and any OnCalendar of the distribution's unit are reset first)."""
    if not value:
        return None
    return "%s\n[Timer]\nOnBootSec=\nOnUnitInactiveSec=\nOnCalendar=\nOnCalendar=%s\n" % (DROPIN_MARKER, value)


def render_service(conditions: dict, python: str) -> Optional[str]:
    """The service's drop-in, or None for none: AC power is a unit condition; a metered connection and a user
    session are the update gate's, an ``ExecCondition=`` (exit 1 skips the update without failing the unit)."""
    gate = update_gate.exec_condition(python, conditions["skip_metered"], conditions["skip_user_sessions"])
    if not (conditions["on_ac_power"] or gate):
        return None
    text = DROPIN_MARKER + "\n"
    if conditions["on_ac_power"]:
        text += "[Unit]\nConditionACPower=true\n"
    if gate:
        text += "%s[Service]\n%s\n" % ("\n" if conditions["on_ac_power"] else "", gate)
    return text


def parse_service(text: Optional[str]) -> dict:
    """The conditions a service drop-in of this module sets."""
    text = text or ""
    found = update_gate.parse_exec_condition(text)
    found["on_ac_power"] = "ConditionACPower=true" in text.splitlines()
    return found


def plan_dropins(current: dict, params: dict, timer: str, python: str) -> dict:
    """{path: text or None (remove)} for the drop-ins that differ from what ``window``, ``on_ac_power``,
    ``skip_metered`` and ``skip_user_sessions`` ask (an option left unset keeps what the drop-in says), with the
    conditions after the run."""
    paths = dropin_paths(timer)
    for path in paths.values():
        have = current.get(path)
        if have is not None and not have.startswith(DROPIN_MARKER):
            raise HostsError("%s exists and was not written by this module; remove it or merge it into your own drop-in" % path)
    changes = {}
    if params["window"] is not None:
        wanted = render_window(params["window"])
        if current.get(paths["window"]) != wanted:
            changes[paths["window"]] = wanted
    have = parse_service(current.get(paths["service"]))
    conditions = {key: have[key] if params[key] is None else params[key] for key in SERVICE_CONDITIONS}
    if any(params[key] is not None for key in SERVICE_CONDITIONS):
        wanted = render_service(conditions, python)
        if current.get(paths["service"]) != wanted:
            changes[paths["service"]] = wanted
    return {"changes": changes, "conditions": conditions}


def plan_gate(current_program: Optional[str], conditions: dict) -> Optional[tuple]:
    """The update gate's program: ("write", text) when a gate needs it and it differs, ("remove", None) when none
    does and it is this module's, else None."""
    needed = conditions["skip_metered"] or conditions["skip_user_sessions"]
    if needed and current_program != update_gate.PROGRAM:
        return ("write", update_gate.PROGRAM)
    if not needed and current_program is not None and update_gate.MARKER in current_program.splitlines()[:2]:
        return ("remove", None)
    return None


def with_dropins(plan: Plan, current: dict, params: dict) -> Plan:
    """The plan of the daemon settings and the timer, with the window and service drop-ins and the gate program."""
    dropins = plan_dropins(current["dropins"], params, plan.result["timer"], current["python"])
    changes, conditions = dropins["changes"], dropins["conditions"]
    gate = plan_gate(current["gate"], conditions)
    diff = list(plan.diff) + [
        {"before": current["dropins"].get(path) or "", "after": text or "", "before_header": path, "after_header": path}
        for path, text in sorted(changes.items())
    ]
    if gate is not None:
        path = update_gate.GATE_PATH
        diff.append({"before": current["gate"] or "", "after": gate[1] or "", "before_header": path, "after_header": path})
    result = dict(plan.result, **conditions)
    window_path = dropin_paths(plan.result["timer"])["window"]
    text = changes[window_path] if window_path in changes else current["dropins"].get(window_path)
    result["window"] = text.rsplit("OnCalendar=", 1)[1].strip() if text else None
    return Plan(
        changed=plan.changed or bool(changes) or gate is not None,
        diff=diff,
        actions=dict(plan.actions, dropins=changes, gate=gate),
        result=result,
    )


def check_window(host, window: Optional[str]) -> None:
    """systemd's own parser says whether the window is a calendar expression (a read: in check mode too)."""
    if not window:
        return
    parsed = host.run(["systemd-analyze", "calendar", "--", window], check=False)
    if parsed.rc != 0:
        raise HostsError(
            "window %r is not a systemd calendar expression (systemd.time(7)): %s"
            % (window, (parsed.stderr or parsed.stdout).strip())
        )


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


def daemon_values(params: dict) -> dict:
    """rpm-ostreed.conf's [Daemon] keys for the options (None: an option not given)."""
    return {
        "AutomaticUpdatePolicy": params["policy"],
        "IdleExitTimeout": params["idle_exit_timeout"],
        "LockLayering": None if params["lock_layering"] is None else str(params["lock_layering"]).lower(),
    }


def plan_policy(text: str, current_timer, params: dict) -> Plan:
    """From the file's text and the timer's state to the wanted settings: a line edit and an enable or disable."""
    values = daemon_values(params)
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
        skip_metered=dict(type="bool"),
        skip_user_sessions=dict(type="bool"),
        path=dict(type="path", default="/etc/rpm-ostreed.conf"),
    )
    MODULE_OPTIONS = dict(
        required_one_of=[
            (
                "policy",
                "idle_exit_timeout",
                "lock_layering",
                "timer_enabled",
                "window",
                "on_ac_power",
                "skip_metered",
                "skip_user_sessions",
            )
        ]
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
        check_window(host, desired["window"])
        paths = dropin_paths(BOOTC_TIMER if kind == "bootc" else TIMER).values()
        units = {
            "dropins": {path: host.read_text(path) for path in paths},
            "gate": host.read_text(update_gate.GATE_PATH),
            # the Python the gate runs with: the distribution's, else the one running this module
            "python": PYTHON if host.exists(PYTHON) else sys.executable,
        }
        return kind, text, timer, units

    def plan(self, current: tuple, desired: dict) -> Plan:
        if current[0] == "bootc":
            return with_dropins(plan_bootc_timer(current[2], desired), current[3], desired)
        return with_dropins(plan_policy(current[1], current[2], desired), current[3], desired)

    def apply(self, host, plan: Plan, desired: dict) -> None:
        if plan.actions["text"] is not None:
            files.replace_file(host.path(desired["path"]), plan.actions["text"])
            host.run(["rpm-ostree", "reload"])
        gate = plan.actions["gate"]
        if gate is not None and gate[0] == "write":
            # before the drop-in that names it
            files.replace_file(host.path(update_gate.GATE_PATH), gate[1], 0o755, create_directory=0o755)
        for path, text in sorted(plan.actions["dropins"].items()):
            if text is None:
                files.remove_file(host.path(path))
            else:
                files.replace_file(host.path(path), text, 0o644, create_directory=0o755)
        if plan.actions["dropins"]:
            host.run(["systemctl", "daemon-reload"])
        if gate is not None and gate[0] == "remove":
            files.remove_file(host.path(update_gate.GATE_PATH))
        if plan.actions["timer"] is not None:
            host.run(["systemctl", "enable" if plan.actions["timer"] else "disable", "--now", plan.result["timer"]])


UNIT = UpdatePolicyUnit()
