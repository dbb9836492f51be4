# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's own exception: every failure a user should read as a message derives from it.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

from typing import Any


class HostsError(Exception):
    """A failure with a message for the user; ``changed`` when the host was changed before it happened, ``fields``
    are what the failed result carries besides the message."""

    def __init__(self, msg: str = "", changed: bool = False, **fields: Any):
        super().__init__(msg)
        self.changed = changed
        self.fields = fields
