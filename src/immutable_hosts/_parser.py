"""The command line's argument parser: a usage error exits 1, never 2, and help texts are plain text.

``immutable-hosts drift`` and ``image build --check`` exit 2 for drift (CI scripts test for it), so argparse's own exit
status for a usage error, 2, would read as "drift found". Descriptions come from the modules' docstrings, written for
Sphinx; ``--help`` shows them without reStructuredText markup.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

USAGE_ERROR = 1

_LITERAL = re.compile(r"``([^`]+)``")
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText markup: ````x```` and ``:class:`~a.b.C``` become ``x`` and ``C``."""
    if text is None:
        return None
    text = _ROLE.sub(lambda match: match.group(1).rsplit(".", 1)[-1], text)
    return _LITERAL.sub(r"\1", text)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors exit 1; its subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["description"] = plain(kwargs.get("description"))
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, "%s: error: %s\n" % (self.prog, message))
