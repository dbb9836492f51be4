# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flatpak's naming rules (application IDs, branches, arches, remote and installation names), the machine's arch as
Flatpak names it, and the error every Flatpak unit raises for bad input or output it cannot understand.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value, shorten

# uname -m -> flatpak's arch names (flatpak_get_arch)
_ARCHES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "i386": "i386",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
}

_ID_ELEMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_LAST_ELEMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
_BRANCH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")
_ARCH_RE = re.compile(r"^[A-Za-z0-9_]+\Z")
_REMOTE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*\Z")


class FlatpakError(HostsError, ValueError):
    """Bad input, or Flatpak output that cannot be understood; ``str()`` is the message for the user."""


def flatpak_arch(machine: str) -> str:
    """The arch Flatpak uses on a machine (``uname -m``)."""
    if machine in _ARCHES:
        return _ARCHES[machine]
    if machine.startswith("arm"):
        return "arm"
    return machine


def is_valid_id(name: str) -> bool:
    """flatpak_is_valid_name: at least three dot-separated elements, none starting with a digit, '-' only in the last."""
    if not isinstance(name, str) or not 0 < len(name) <= 255:
        return False
    parts = name.split(".")
    if len(parts) < 3:
        return False
    return all(_ID_ELEMENT_RE.match(p) for p in parts[:-1]) and bool(_LAST_ELEMENT_RE.match(parts[-1]))


def is_valid_branch(branch: str) -> bool:
    return isinstance(branch, str) and bool(_BRANCH_RE.match(branch))


def is_valid_arch(arch: str) -> bool:
    return isinstance(arch, str) and bool(_ARCH_RE.match(arch))


def is_valid_remote_name(name) -> bool:
    """A remote's or a custom installation's name."""
    return isinstance(name, str) and bool(_REMOTE_NAME_RE.match(name)) and len(name) <= 255


def validate_remote_name(name) -> str:
    if not is_valid_remote_name(name):
        shown = shorten(name) if isinstance(name, str) else name
        raise FlatpakError(
            "remote name %r is not valid: letters, digits and . _ - only, not starting with . or -, at most 255" % (shown,)
        )
    return name


def validate_text(value, what: str) -> Optional[str]:
    """One line of text for a keyfile or a command line, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise FlatpakError("%s must be one line of text, got %r" % (what, value))
    return check_value(value, what, FlatpakError)
