# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""GLib keyfiles (ostree origin files, ``/etc/rpm-ostreed.conf``, Flatpak overrides, remotes and ``.flatpakrepo``
files): read and written as GLib reads and writes them, and edited line by line where a file is someone else's.

Lines end at ``\\n`` only.  Values are unescaped as ``g_key_file_get_string`` does (``\\s``, ``\\n``, ``\\t``, ``\\r``,
``\\\\``) and escaped as ``g_key_file_set_string`` does (backslashes doubled, a leading blank as ``\\s``).
:func:`set_values` keeps every other line and comment where it was: a setting replaces the live ``Key=`` line of
its group; else it goes right after the commented-out ``#Key=`` line (where shipped configuration files document the
default); else at the end of the group, which is created when missing.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import split_lines

_GROUP_RE = re.compile(r"^\[(?P<name>[^\]]+)\]\s*$")
_EDIT_GROUP_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_UNESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


class KeyfileError(HostsError, ValueError):
    """Text that is not a keyfile."""


def unescape(value: str) -> str:
    """A value as ``g_key_file_get_string`` reads it (an unknown escape is kept as written)."""
    if "\\" not in value:
        return value
    out, index = [], 0
    while index < len(value):
        char = value[index]
        if char == "\\" and index + 1 < len(value) and value[index + 1] in _UNESCAPES:
            out.append(_UNESCAPES[value[index + 1]])
            index += 2
            continue
        out.append(char)
        index += 1
    return "".join(out)


def escape(value: str) -> str:
    """A value as ``g_key_file_set_string`` writes it."""
    value = value.replace("\\", "\\\\")
    return "\\s" + value[1:] if value.startswith(" ") else value


def parse(text: Optional[str]) -> dict:
    """A keyfile as {group: {key: value}} in file order, values unescaped; comments and blank lines dropped."""
    groups: dict = {}
    current = None
    for number, raw in enumerate(split_lines(text), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _GROUP_RE.match(line)
        if match:
            current = groups.setdefault(match.group("name"), {})
            continue
        if current is None or "=" not in line:
            raise KeyfileError("line %d is neither a [group] nor key=value: %r" % (number, raw))
        key, value = line.split("=", 1)
        current[key.strip()] = unescape(value.strip())
    return groups


def render(groups: dict) -> str:
    """{group: {key: value}} as a keyfile, groups with no keys left out."""
    blocks = []
    for group, values in groups.items():
        if not values:
            continue
        lines = ["[%s]" % group] + ["%s=%s" % (key, escape(value)) for key, value in values.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def string_list(value: Optional[str]) -> list:
    """A GLib string list (``a;b;``) as a Python list."""
    if not value:
        return []
    return [item for item in value.split(";") if item]


# --- editing in place ----------------------------------------------------------------------------------------------


def _key_re(key: str, commented: bool) -> re.Pattern:
    prefix = r"^\s*#\s*" if commented else r"^\s*"
    return re.compile(prefix + re.escape(key) + r"\s*=")


def _group_span(lines: list, group: str) -> Optional[tuple]:
    start = None
    for index, line in enumerate(lines):
        match = _EDIT_GROUP_RE.match(line)
        if not match:
            continue
        if start is not None:
            return start, index
        if match.group("name") == group:
            start = index
    return (start, len(lines)) if start is not None else None


def set_values(text: Optional[str], group: str, values: dict, remove: tuple = (), raw: bool = False) -> str:
    """``text`` with ``values`` ({key: value}) set in ``group``; a value of None leaves that key alone, a key in
    ``remove`` loses its live lines. ``raw`` writes values as they are (INI files that do not unescape, such as
    libdnf's ``.repo`` files)."""
    lines = split_lines(text)
    span = _group_span(lines, group)
    if span is not None:
        for index in reversed(range(span[0] + 1, span[1])):
            if any(_key_re(key, False).match(lines[index]) for key in remove):
                del lines[index]
    for key, value in values.items():
        if value is None:
            continue
        wanted = "%s=%s" % (key, str(value) if raw else escape(str(value)))
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
