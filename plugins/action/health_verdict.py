# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action of immutable.hosts.health_verdict: the module, asked again until its verdict is final.

A health gate that fails a deployment reboots the host; a connection that fails meanwhile is expected, so the
connection is reset and the module asked again, until ``timeout``.
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = "immutable.hosts.health_verdict"
POLL = 5


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        timeout = int(self._task.args.get("timeout", 0) or 0)
        deadline = time.monotonic() + timeout
        attempts, last = 0, None
        while True:
            attempts += 1
            answer = self._ask(task_vars, last_chance=time.monotonic() >= deadline)
            if answer is not None:
                last = answer
                if answer.get("failed") or answer.get("final"):
                    break
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
            try:
                self._connection.reset()
            except AnsibleError as exc:  # a connection already gone cannot be reset; the next call reconnects
                display.vvv("health_verdict: connection reset: %s" % exc)
        result.update(last or {"failed": True, "msg": "the host did not answer within timeout (%d s)" % timeout})
        result["attempts"] = attempts
        return result

    def _ask(self, task_vars, last_chance: bool):
        """The module's answer, or None while the host is down (the gate reboots it)."""
        try:
            answer = self._execute_module(module_name=MODULE, module_args=self._task.args, task_vars=task_vars)
        except AnsibleError as exc:
            if last_chance:
                raise
            display.vvv("health_verdict: host not reachable yet: %s" % exc)
            return None
        return None if answer.get("unreachable") and not last_chance else answer
