# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of immutable.hosts.deployment: the module, and after a ``finalize`` that reboots the host, the wait for
it to come back and the check of what it booted.

The module starts the finalize command in a transient systemd unit a few seconds after it returned, with the host's
boot ID. This action then polls the boot ID (the way ansible.builtin.reboot does), stops early when the unit failed
(with its journal), and once the boot ID changed reads the OSTree facts again: the host must have booted the
deployment it finalized.  What the host reported is checked before it goes into a command line.
"""

from __future__ import annotations

import re
import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = "immutable.hosts.deployment"
FACTS = "immutable.hosts.ostree_facts"
UNIT = re.compile(r"\Aimmutable-hosts-finalize-[0-9]+\.service\Z")
BOOT_ID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
READ_BOOT_ID = "cat /proc/sys/kernel/random/boot_id"
START_DELAY = 3  # the module's FINALIZE_DELAY: nothing happens before
POLL = 3


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self._execute_module(module_name=MODULE, module_args=self._task.args, task_vars=task_vars))
        if result.get("failed") or not result.get("rebooting"):
            return result
        boot_id, unit = str(result.get("boot_id", "")), str(result.get("finalize_unit", ""))
        if not BOOT_ID.match(boot_id) or not UNIT.match(unit):
            return dict(result, failed=True, msg="the module returned no usable boot ID or unit; the host may be rebooting")
        timeout = int(self._task.args.get("reboot_timeout", 900))
        started = time.monotonic()
        soft = result.get("soft_reboots")
        failure = self._wait_for_new_boot(boot_id, unit, started + timeout, soft if isinstance(soft, int) else None)
        result["elapsed"] = int(time.monotonic() - started)
        if failure:
            return dict(result, failed=True, msg=failure)
        result["rebooted"] = True
        return self._booted(result, task_vars)

    def _wait_for_new_boot(self, boot_id: str, unit: str, deadline: float, soft_reboots=None):
        """None once the host runs with another boot ID, or (``soft_reboots``, the count before) after a soft reboot;
        else why not (the unit failed, or the time is up)."""
        time.sleep(START_DELAY)
        while time.monotonic() < deadline:
            time.sleep(POLL)
            try:
                self._connection.reset()
            except Exception as exc:  # a connection that is already gone cannot be reset; the next call reconnects
                display.vvv("deployment finalize: connection reset: %s" % exc)
            try:
                done = self._low_level_execute_command(READ_BOOT_ID, sudoable=False)
            except Exception as exc:  # the host is going down or still booting: poll again
                display.vvv("deployment finalize: host not back yet: %s" % exc)
                continue
            now = str(done.get("stdout", "")).strip()
            if done.get("rc") != 0 or not now:
                continue
            if now != boot_id:
                return None
            if soft_reboots is not None and self._soft_reboots() > soft_reboots:
                return None
            failed = self._unit_failure(unit)
            if failed:
                return failed
        return "the host did not come back with a new boot ID within reboot_timeout (%s)" % self._task.args.get(
            "reboot_timeout", 900
        )

    def _soft_reboots(self) -> int:
        """systemd's count of soft reboots since the kernel booted (-1 when unknown)."""
        try:
            shown = self._low_level_execute_command("systemctl show --property=SoftRebootsCount --value", sudoable=False)
        except AnsibleError as exc:  # going down
            display.vvv("deployment finalize: soft reboots unknown: %s" % exc)
            return -1
        text = str(shown.get("stdout", "")).strip()
        return int(text) if text.isdigit() else -1

    def _unit_failure(self, unit: str):
        """The finalize unit's journal when it failed (the host then stays up on the old boot)."""
        try:
            shown = self._low_level_execute_command("systemctl show --property=ActiveState --property=Result " + unit)
        except Exception as exc:  # going down
            display.vvv("deployment finalize: unit state unknown: %s" % exc)
            return None
        fields = dict(line.partition("=")[::2] for line in str(shown.get("stdout", "")).splitlines())
        if fields.get("ActiveState") != "failed":
            return None
        try:
            journal = self._low_level_execute_command("journalctl --no-pager -o cat -n 20 -u " + unit)
            told = str(journal.get("stdout", "")).strip()
        except Exception as exc:  # going down after all
            told = "(journal unavailable: %s)" % exc
        return "finalizing the staged deployment failed (%s, %s); the host did not reboot:\n%s" % (
            unit,
            fields.get("Result"),
            told,
        )

    def _booted(self, result: dict, task_vars):
        """After the reboot: the facts again, and the booted deployment must be the finalized one."""
        facts = self._execute_module(module_name=FACTS, module_args={}, task_vars=task_vars)
        if facts.get("failed"):
            return dict(result, failed=True, msg="the host rebooted, but reading its state failed: %s" % facts.get("msg"))
        ostree = facts.get("ansible_facts", {}).get("ostree", {})
        booted = ostree.get("booted") or {}
        for key in ("reboot_required", "reboot_reasons", "staged_locked", "staged_locked_reasons"):
            if key in ostree:
                result[key] = ostree[key]
        result["booted"] = {key: booted.get(key) for key in ("checksum", "version")}
        expected = (result.get("finalized") or {}).get("checksum")
        if expected and booted.get("checksum") != expected:
            return dict(
                result,
                failed=True,
                msg="the host rebooted into %s, not the finalized deployment %s" % (booted.get("checksum"), expected),
            )
        return result
