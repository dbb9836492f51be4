# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every rpm-ostree module does around its own plan: read the status once, wait out a busy daemon,
respect an update driver, run mutations through the runner, and report the pending deployment and reboot state.

Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils import host, ostree, rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.facts import DEPLOYMENT_FACT_KEYS
from ansible_collections.immutable.hosts.plugins.module_utils.runner import BusyTimeout, Runner, RunnerError

COMMON_ARGUMENT_SPEC = dict(
    wait_timeout=dict(type="int", default=600),
    bypass_driver=dict(type="bool", default=False),
)

# systemd states in which rpm-ostree treats a registered update driver as in charge.
DRIVER_ACTIVE_STATES = ("active", "activating", "reloading", "failed")

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 15.0

# Every host path is read below ROOT ("/" on a real host); tests point it and make_runner elsewhere.
ROOT = "/"


def make_runner() -> Runner:
    return Runner()


class OstreeHostError(Exception):
    pass


class RpmOstreeHost:
    """One module run against rpm-ostree.  ``status`` is read once; it is read again only while the daemon is busy
    and after a change, to report the new pending deployment."""

    def __init__(self, module, runner: Optional[Runner] = None, root: Optional[str] = None):
        self.module = module
        self.runner = runner or make_runner()
        self.root = ROOT if root is None else root
        timeout = module.params.get("wait_timeout", 600)
        if timeout is None or timeout < 0:
            raise OstreeHostError("wait_timeout must be 0 or more seconds")
        self.deadline = self.runner.deadline(timeout)
        self.status: Optional[dict] = None
        self._kargs: Optional[dict] = None

    # --- reading ----------------------------------------------------------------------------------------------

    def require_ostree(self) -> None:
        if not host.is_ostree_booted(self.root):
            raise OstreeHostError(
                "this host was not booted through OSTree (no /run/ostree-booted); it has no deployments to manage"
            )
        if not self.runner.which("rpm-ostree"):
            raise OstreeHostError("rpm-ostree is not installed on this OSTree host")

    def load(self) -> dict:
        result = self.runner.run(["rpm-ostree", "status", "--json"])
        self.status = rpm_ostree.parse_status(result.stdout)
        self._kargs = None
        return self.status

    def wait_idle(self) -> dict:
        """Poll the status while a transaction runs; past ``wait_timeout`` fail naming it."""
        started = self.runner.clock()
        delay = BACKOFF_FIRST
        while self.status["transaction"] is not None:
            now = self.runner.clock()
            if now >= self.deadline:
                raise BusyTimeout(rpm_ostree.transaction_title(self.status), now - started)
            self.runner.sleep(min(delay, max(self.deadline - now, 0.0)))
            delay = min(delay * 2, BACKOFF_MAX)
            self.load()
        return self.status

    def refuse_driver(self) -> None:
        """Fail when an active update driver (Zincati, for example) is in charge and ``bypass_driver`` is not set."""
        driver = self.status.get("update_driver")
        if not driver or self.module.params.get("bypass_driver"):
            return
        unit = driver.get("unit")
        if unit:
            state = self.runner.run(["systemctl", "is-active", unit], check=False).stdout.strip()
            if state not in DRIVER_ACTIVE_STATES:
                return
        raise OstreeHostError(
            "updates and deployments on this host are driven by %s (%s); let it do its job, or set bypass_driver=true "
            "to act anyway" % (driver["name"], unit or "no unit")
        )

    def merge(self) -> dict:
        deployment = rpm_ostree.pick(self.status, "merge")
        if deployment is None:
            raise OstreeHostError("rpm-ostree reports no deployment for the booted stateroot")
        return deployment

    def kargs_of(self, deployment: Optional[dict], ask: bool = True) -> Optional[list]:
        """Kernel arguments of a deployment, from its BLS entry; a staged deployment has none until it is finalised,
        so for the deployment changes stack on, ``rpm-ostree kargs`` answers instead (only when ``ask``)."""
        if deployment is None:
            return None
        if self._kargs is None:
            self._kargs = host.read_boot_kargs(self.root) or {}
        found = self._kargs.get((deployment["checksum"], deployment["serial"]))
        if found is None and ask and deployment["index"] == self.status["merge_index"]:
            found = ostree.split_kargs(self.runner.run(["rpm-ostree", "kargs"]).stdout)
            self._kargs[(deployment["checksum"], deployment["serial"])] = found
        return found

    # --- acting -----------------------------------------------------------------------------------------------

    def run(self, argv: list, ok_rcs=(0, 77)):
        """Run one rpm-ostree transaction, retrying while another one is in progress."""
        return self.runner.run(["rpm-ostree", *argv], ok_rcs=ok_rcs, busy_deadline=self.deadline)

    # --- reporting --------------------------------------------------------------------------------------------

    def reboot_state(self, predicted_reasons: Optional[list] = None) -> dict:
        booted = rpm_ostree.pick(self.status, "booted")
        pending = rpm_ostree.pick(self.status, "pending")
        state = rpm_ostree.reboot_state(self.status)
        if pending is not None and booted is not None:
            # Reporting never costs a process: arguments come from BLS entries or what the module already read.
            before, after = self.kargs_of(booted, ask=False), self.kargs_of(pending, ask=False)
            state = rpm_ostree.reboot_state(self.status, booted_kargs=before, pending_kargs=after)
        if not predicted_reasons:
            return state
        # A change this run would make stages a new deployment without a finalization lock, on top of whatever is
        # pending: a reboot then boots it, locked or not before.
        reasons = [r for r in state["reboot_reasons"] + state["staged_locked_reasons"] if r != ostree.REASON_FINALIZATION_LOCKED]
        for reason in predicted_reasons:
            if reason not in reasons:
                reasons.append(reason)
        return ostree.reboot_verdict(reasons)

    def exit(
        self, changed: bool, diff: dict, predicted_reasons: Optional[list] = None, merge_kargs: Optional[list] = None, **extra
    ) -> None:
        """Report: re-read the status after a real change, so ``deployment`` is the new pending one.

        ``merge_kargs`` are the kernel arguments the change gave the new pending deployment, when the module knows them.
        """
        if changed and not self.module.check_mode:
            self.load()
            predicted_reasons = None
            if merge_kargs is not None:
                merge = self.merge()
                self.kargs_of(merge, ask=False)
                self._kargs[(merge["checksum"], merge["serial"])] = merge_kargs
        reboot = self.reboot_state(predicted_reasons if changed else None)
        merge = rpm_ostree.pick(self.status, "merge")
        # The same shape as ansible_facts.ostree.deployments, without the bulky commit metadata.
        deployment = {key: merge[key] for key in DEPLOYMENT_FACT_KEYS if key in merge} if merge else None
        self.module.exit_json(
            changed=changed,
            diff=diff,
            commands=self.runner.commands,
            deployment=deployment,
            **reboot,
            **extra,
        )

    def fail(self, msg: str, **extra) -> None:
        self.module.fail_json(msg=msg, commands=self.runner.commands, **extra)


def run_module(module, body) -> None:
    """Run ``body(host)`` and turn every expected error into ``fail_json`` with the commands that ran."""
    try:
        rpm_host = RpmOstreeHost(module)
    except OstreeHostError as exc:
        module.fail_json(msg=str(exc), commands=[])
    try:
        body(rpm_host)
    except (OstreeHostError, RunnerError, ValueError) as exc:
        rpm_host.fail(str(exc))
