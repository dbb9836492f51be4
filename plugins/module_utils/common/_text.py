# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One rule for text that reaches a line-based file or a command line, and one way to read such files.

Readers disagree on what ends a line: systemd takes ``\\r`` and NUL, Python's ``str.splitlines`` also
``\\v``, ``\\f``, ``\\x1c``-``\\x1e``, U+0085, U+2028 and U+2029.  A value holding any of them can become a second
line for one reader and stay one line for another, so a value that reaches a file or an argument list never
holds any character that some reader treats as a line break or control: C0 and C1 controls, DEL, U+2028 and U+2029.
Files are split at ``\\n`` only, which is what GLib's keyfile parser, Podman's Quadlet parser, shadow and the
kernel do.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

# No single value needs more; a longer one is a mistake (or an attack on memory), refused with its length.
MAX_VALUE = 65536
# Nor does a whole file given as text (a Quadlet unit, an override): systemd reads lines up to 1 MiB.
MAX_CONTENT = 1024 * 1024

# Every character some reader of our files treats as a line break or a control character.
_FORBIDDEN = "\x00-\x1f\x7f-\x9f\u2028\u2029"
BREAKS_AND_CONTROLS = re.compile("[%s]" % _FORBIDDEN)
# The same but the tab, for values where systemd's or the kernel's word splitting reads a tab as a blank.
BREAKS_AND_CONTROLS_BUT_TAB = re.compile("(?!\t)[%s]" % _FORBIDDEN)


def describe(char: str) -> str:
    """``U+2028 (LINE SEPARATOR)`` for a message that names the character without printing it."""
    name = unicodedata.name(char, "")
    if not name:
        name = {"\n": "LINE FEED", "\r": "CARRIAGE RETURN", "\t": "TAB", "\x00": "NUL"}.get(char, "control character")
    return "U+%04X (%s)" % (ord(char), name)


def bad_character(value: str, allow: str = "") -> Optional[str]:
    """A description of the first forbidden character of ``value`` (``allow`` excepted), or None when it has none."""
    for match in BREAKS_AND_CONTROLS.finditer(value):
        if match.group(0) not in allow:
            return describe(match.group(0))
    return None


def check_value(value: str, what: str, error: type = ValueError, allow: str = "") -> str:
    """``value`` unchanged, or ``error`` naming ``what`` and the first line break or control character in it
    (``allow`` lists the characters this value may hold anyway, a tab for example)."""
    if len(value) > MAX_VALUE:
        raise error("%s is %d characters long; a value holds at most %d" % (what, len(value), MAX_VALUE))
    found = bad_character(value, allow)
    if found:
        raise error("%s contains %s, a line break or control character; %r is not allowed" % (what, found, shorten(value)))
    return value


def shorten(value: str, limit: int = 80) -> str:
    """A value short enough to quote in a message."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def check_content(text: str, what: str, error: type = ValueError) -> str:
    """A whole file's text: newlines and tabs allowed, every other line break or control character refused."""
    if len(text) > MAX_CONTENT:
        raise error("%s is %d characters long; a file given as text holds at most %d" % (what, len(text), MAX_CONTENT))
    found = bad_character(text, allow="\n\t")
    if found:
        raise error("%s contains %s, which some readers treat as a line break or control character" % (what, found))
    return text


def split_lines(text: Optional[str]) -> list:
    """The lines of a file, split at ``\\n`` only (a trailing ``\\r`` stays part of its line)."""
    if not text:
        return []
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return parts
