# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every OSTree unit reads of a host, each read once per run through the host reader: the rpm-ostree status
(waited on while the daemon is busy), the bootc status, the kernel arguments of the Boot Loader Specification entries,
``/etc/rpm-ostreed.conf``; and what every rpm-ostree unit does around its plan: refuse to act under an update driver,
run one transaction patiently, and report the deployment and reboot state afterwards.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import os
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree

OSTREE_BOOTED = "/run/ostree-booted"
REPOS_DIR = "/etc/yum.repos.d"  # the package repositories libdnf (rpm-ostree) reads
# Type 1 entries: /boot for ostree and grub; the ESP for bootc's composefs backend with systemd-boot.
BLS_GLOBS = ("/boot/loader/entries/*.conf", "/boot/efi/loader/entries/*.conf", "/efi/loader/entries/*.conf")
RPM_OSTREED_CONF = "/etc/rpm-ostreed.conf"
TIMER_WANTS = "/etc/systemd/system/timers.target.wants"
STATUS = ("rpm-ostree", "status")
BOOTC_STATUS = ("bootc", "status")
BOOT_KARGS = ("boot", "kargs")

# The options every rpm-ostree unit shares (doc fragment immutable.hosts.rpm_ostree).
COMMON_ARGUMENT_SPEC = dict(
    wait_timeout=dict(type="int", default=600),
    bypass_driver=dict(type="bool", default=False),
)
# systemd states in which rpm-ostree treats a registered update driver as in charge.
DRIVER_ACTIVE_STATES = ("active", "activating", "reloading", "failed")


class OstreeHostError(HostsError):
    pass


def check_common(params: dict) -> None:
    """The shared options checked in every rpm-ostree unit's ``desired``, before anything runs."""
    if params.get("wait_timeout", 0) < 0:
        raise OstreeHostError("wait_timeout must be 0 or more seconds")


# --- files ----------------------------------------------------------------------------------------------------------


def is_ostree_booted(host) -> bool:
    return host.exists(OSTREE_BOOTED)


def timer_enabled(host, name: str) -> bool:
    """Whether a timer is enabled by the usual ``timers.target.wants`` link (no systemctl call)."""
    return host.exists(os.path.join(TIMER_WANTS, name))


def update_config(host) -> dict:
    return ostree.parse_rpm_ostreed_conf(host.read_text(RPM_OSTREED_CONF))


def boot_kargs(host) -> dict:
    """Kernel arguments of every deployment that has a BLS entry, keyed by (checksum, serial), read once.

    Entries are matched to deployments through the ``ostree=`` link they boot; bootc's composefs entries through
    their ``composefs=`` digest, keyed by ("composefs", digest).  Empty when ``/boot`` is unreadable.
    """

    def read() -> dict:
        result = {}
        for path in [path for pattern in BLS_GLOBS for path in host.glob(pattern)]:
            text = host.read_text(path)
            if text is None:
                return {}
            entry = ostree.parse_bls_entry(text)
            digest = ostree.composefs_digest(entry["kargs"])
            if digest:
                result[("composefs", digest)] = entry["kargs"]
                continue
            boot_path = ostree.ostree_boot_path(entry["kargs"])
            target = ostree.deployment_from_link(os.path.realpath(host.path(boot_path))) if boot_path else None
            if target:
                result[(target[1], target[2])] = entry["kargs"]
        return result

    return host.once(BOOT_KARGS, read)


def deployment_dir(osname: str, checksum: str, serial: int) -> str:
    """Where OSTree checks a deployment out: its tree is this directory, its origin file this path plus ``.origin``."""
    return "/ostree/deploy/%s/deploy/%s.%d" % (osname, checksum, serial)


def origin_file(host, deployment: dict) -> Optional[str]:
    return host.read_text(deployment_dir(deployment["osname"], deployment["checksum"], deployment["serial"]) + ".origin")


# --- rpm-ostree -----------------------------------------------------------------------------------------------------


def require_rpm_ostree(host) -> None:
    if not is_ostree_booted(host):
        raise OstreeHostError("this host was not booted through OSTree (no /run/ostree-booted); it has no deployments to manage")
    if not host.which("rpm-ostree"):
        if host.which("bootc"):
            raise OstreeHostError(
                "this host has no rpm-ostree: bootc manages it, and bootc changes nothing on the host but the image it "
                "follows; bake packages, overrides and the initramfs into the image (Containerfile), and kernel "
                "arguments into /usr/lib/bootc/kargs.d/*.toml in it"
            )
        raise OstreeHostError("rpm-ostree is not installed on this OSTree host")


# rpm-ostree's daemon may still be starting right after boot (D-Bus activation): its status is asked again.
STARTUP_ERRORS = ("Failed to activate service", "Timeout was reached", "timed out")
STARTUP_RETRIES = 10


def read_patiently(host, argv: list, retries: int = STARTUP_RETRIES) -> str:
    """A status command's output, asked again (one second apart, up to ``retries`` times) while the daemon starts."""
    for attempt in range(retries + 1):
        result = host.run(argv, check=False)
        transient = any(text in result.stderr for text in STARTUP_ERRORS)
        if result.rc == 0 or not transient or attempt == retries:
            break
        host.runner.sleep(1)
    if result.rc != 0:
        raise OstreeHostError("%s failed with exit code %d: %s" % (" ".join(argv), result.rc, result.stderr.strip()))
    return result.stdout


def status(host, retries: int = STARTUP_RETRIES) -> dict:
    """``rpm-ostree status --json``, parsed, read once per run (``reload`` after a change)."""
    return host.once(STATUS, lambda: rpm_ostree.parse_status(read_patiently(host, ["rpm-ostree", "status", "--json"], retries)))


def reload(host) -> dict:
    host.forget(STATUS)
    return status(host)


def wait_idle(host, deadline: float) -> dict:
    """The status once no transaction runs; while one does, it is read again with the runner's backoff, and past
    ``deadline`` the error names the busy transaction."""

    def attempt() -> tuple:
        current = status(host)
        if current["transaction"] is None:
            return current, None
        host.forget(STATUS)
        return current, rpm_ostree.transaction_title(current)

    return host.runner.until_idle(attempt, deadline)


def refuse_driver(host, current: dict, bypass: bool) -> None:
    """Fail when an active update driver (Zincati, for example) is in charge and ``bypass_driver`` is not set."""
    driver = current.get("update_driver")
    if not driver or bypass:
        return
    unit = driver.get("unit")
    if unit:
        state = host.run(["systemctl", "is-active", unit], check=False).stdout.strip()
        if state not in DRIVER_ACTIVE_STATES:
            return
    raise OstreeHostError(
        "updates and deployments on this host are driven by %s (%s); let it do its job, or set bypass_driver=true "
        "to act anyway" % (driver["name"], unit or "no unit")
    )


def prepare(host, params: dict) -> dict:
    """Before a change (in check mode too, so it says what a real run would say): wait while rpm-ostree is busy, and
    refuse to act under an active update driver.  Returns the status the change starts from."""
    current = wait_idle(host, host.runner.deadline(params.get("wait_timeout", 600)))
    refuse_driver(host, current, params.get("bypass_driver", False))
    return current


def transaction(host, argv: list, params: dict, ok_rcs=(0, 77), dry_run: bool = False):
    """One rpm-ostree transaction, tried again while another one is in progress; the status is read anew after it
    (not after a ``--dry-run``, which changes nothing)."""
    try:
        return host.run(["rpm-ostree", *argv], ok_rcs=ok_rcs, busy_deadline=host.runner.deadline(params.get("wait_timeout", 600)))
    finally:
        if not dry_run:
            host.forget(STATUS)


def merge(current: dict) -> dict:
    deployment = rpm_ostree.pick(current, "merge")
    if deployment is None:
        raise OstreeHostError("rpm-ostree reports no deployment for the booted stateroot")
    return deployment


def kargs_of(host, current: dict, deployment: Optional[dict], ask: bool = True) -> Optional[list]:
    """Kernel arguments of a deployment, from its BLS entry; a staged deployment has none until it is finalised, so
    for the deployment changes stack on ``rpm-ostree kargs`` answers instead (only when ``ask``)."""
    if deployment is None:
        return None
    known = boot_kargs(host)
    key = (deployment["checksum"], deployment["serial"])
    if known.get(key) is None and ask and deployment["index"] == current["merge_index"]:
        known[key] = ostree.split_kargs(host.run(["rpm-ostree", "kargs"]).stdout)
    return known.get(key)


def report(host, changed: bool, predicted: Optional[list] = None, merge_kargs: Optional[list] = None) -> dict:
    """The result every rpm-ostree unit ends with: ``deployment`` (the one changes stack on, in the facts' shape) and
    the reboot state, read again after a real change and predicted in check mode."""
    from ansible_collections.immutable.hosts.plugins.module_utils.ostree._facts import DEPLOYMENT_FACT_KEYS

    current = status(host)
    new_merge = rpm_ostree.pick(current, "merge")
    known = dict(boot_kargs(host))
    if changed and not host.check_mode and merge_kargs is not None and new_merge is not None:
        known[(new_merge["checksum"], new_merge["serial"])] = merge_kargs
    booted, pending = rpm_ostree.pick(current, "booted"), rpm_ostree.pick(current, "pending")
    state = rpm_ostree.reboot_state(
        current,
        booted_kargs=known.get((booted["checksum"], booted["serial"])) if booted else None,
        pending_kargs=known.get((pending["checksum"], pending["serial"])) if pending else None,
    )
    if changed and host.check_mode and predicted:
        state = predicted_verdict(state, predicted)
    deployment = {key: new_merge[key] for key in DEPLOYMENT_FACT_KEYS if key in new_merge} if new_merge else None
    return dict(state, deployment=deployment)


# --- bootc ------------------------------------------------------------------------------------------------------------


def bootc_status(host, retries: int = STARTUP_RETRIES) -> dict:
    return host.once(
        BOOTC_STATUS, lambda: bootc.parse_status(read_patiently(host, ["bootc", "status", "--format=json"], retries))
    )


def bootc_only(host) -> bool:
    """An OSTree host that bootc alone manages: no rpm-ostree (an image-mode system built without it)."""
    return is_ostree_booted(host) and not host.which("rpm-ostree") and bool(host.which("bootc"))


def bootc_report(host, changed: bool, predicted: Optional[list] = None) -> dict:
    """The reboot state of a bootc host after a unit ran: read again after a real change (the unit forgot the status),
    predicted in check mode: a change this run would make comes on top of what is pending."""
    state = bootc.reboot_state(bootc_status(host))
    if changed and host.check_mode and predicted:
        state = predicted_verdict(state, predicted)
    return state


def predicted_verdict(state: dict, predicted: list) -> dict:
    """The reboot state a check predicts: a change this run would make stages a new deployment without a
    finalization lock, on top of whatever is pending, so a reboot then boots it, locked or not before."""
    pending = state["reboot_reasons"] + state.get("staged_locked_reasons", [])
    reasons = [r for r in pending if r != ostree.REASON_FINALIZATION_LOCKED]
    return ostree.reboot_verdict(reasons + [r for r in predicted if r not in reasons])
