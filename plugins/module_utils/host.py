# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading an OSTree host's own files: the few reads every OSTree module shares, with no processes spawned.

All paths are taken below ``root`` ("/" on a real host), so tests can lay a host out in a directory.
Standard library only, Python 3.9+.
"""

from __future__ import annotations

import glob
import os
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils import ostree

OSTREE_BOOTED = "run/ostree-booted"
# Type 1 entries: /boot for ostree and grub; the ESP for bootc's composefs backend with systemd-boot.
BLS_GLOBS = ("boot/loader/entries/*.conf", "boot/efi/loader/entries/*.conf", "efi/loader/entries/*.conf")
RPM_OSTREED_CONF = "etc/rpm-ostreed.conf"
TIMER_WANTS = "etc/systemd/system/timers.target.wants"


def host_path(root: str, relative: str) -> str:
    return os.path.join(root, relative.lstrip("/"))


def read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def is_ostree_booted(root: str) -> bool:
    return os.path.exists(host_path(root, OSTREE_BOOTED))


def timer_enabled(root: str, name: str) -> bool:
    """Whether a timer is enabled by the usual ``timers.target.wants`` link (no systemctl call)."""
    return os.path.exists(os.path.join(host_path(root, TIMER_WANTS), name))


def read_update_config(root: str) -> dict:
    return ostree.parse_rpm_ostreed_conf(read_text(host_path(root, RPM_OSTREED_CONF)))


def read_boot_kargs(root: str) -> Optional[dict]:
    """Kernel arguments of every deployment that has a BLS entry, keyed by (checksum, serial).

    Entries are matched to deployments through the ``ostree=`` link they boot; bootc's composefs entries, through
    their ``composefs=`` digest, keyed by ("composefs", digest).  None when ``/boot`` is unreadable.
    """
    result = {}
    try:
        paths = sorted(path for pattern in BLS_GLOBS for path in glob.glob(host_path(root, pattern)))
    except OSError:
        return None
    for path in paths:
        text = read_text(path)
        if text is None:
            return None
        entry = ostree.parse_bls_entry(text)
        digest = ostree.composefs_digest(entry["kargs"])
        if digest:
            result[("composefs", digest)] = entry["kargs"]
            continue
        boot_path = ostree.ostree_boot_path(entry["kargs"])
        target = ostree.deployment_from_link(os.path.realpath(host_path(root, boot_path))) if boot_path else None
        if target:
            result[(target[1], target[2])] = entry["kargs"]
    return result
