# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Edit GLib keyfiles line by line, keeping every other line and comment where it was.

A setting replaces the live ``Key=`` line of its group; else it goes right after the commented-out ``#Key=`` line
(where shipped configuration files document the default); else at the end of the group, which is created when
missing.  Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.text import split_lines

_GROUP_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")


def _key_re(key: str, commented: bool) -> re.Pattern:
    prefix = r"^\s*#\s*" if commented else r"^\s*"
    return re.compile(prefix + re.escape(key) + r"\s*=")


def _group_span(lines: list, group: str) -> Optional[tuple]:
    start = None
    for index, line in enumerate(lines):
        match = _GROUP_RE.match(line)
        if not match:
            continue
        if start is not None:
            return start, index
        if match.group("name") == group:
            start = index
    return (start, len(lines)) if start is not None else None


def set_values(text: str, group: str, values: dict) -> str:
    """``text`` with ``values`` ({key: value}) set in ``group``; a value of None leaves that key alone."""
    lines = split_lines(text)
    for key, value in values.items():
        if value is None:
            continue
        wanted = "%s=%s" % (key, value)
        span = _group_span(lines, group)
        if span is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines += ["[%s]" % group, wanted]
            continue
        start, end = span
        live = [i for i in range(start + 1, end) if _key_re(key, False).match(lines[i])]
        if live:
            lines[live[0]] = wanted
            for extra in reversed(live[1:]):
                del lines[extra]
            continue
        commented = [i for i in range(start + 1, end) if _key_re(key, True).match(lines[i])]
        if commented:
            lines.insert(commented[0] + 1, wanted)
            continue
        insert_at = end
        while insert_at - 1 > start and not lines[insert_at - 1].strip():
            insert_at -= 1
        lines.insert(insert_at, wanted)
    return "\n".join(lines) + "\n" if lines else ""
