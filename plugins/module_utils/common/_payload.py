# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Our module_utils compiled once, not twice, when they run from a module's AnsiballZ payload.

On the managed host a module runs from a ZIP file (its AnsiballZ payload) of Python sources, imported by the standard
library's ``zipimport``. That importer compiles a module's source once to name its file, while the module spec is
made, and once more to run it (CPython gh-141276, open in every Python from 3.8 to 3.14); nothing is cached, since a
ZIP holds no bytecode. Compiling is most of what importing costs there: for ``immutable.hosts.host_state``, which
imports ~40 of our files, the second compile was about a fifth of the module's whole run on a lab host.

:func:`compile_once`, called by each module file before it imports anything else of ours, adds a path entry hook
(``sys.path_hooks``, the import system's documented place for a finder of one kind of path entry): for a directory
of our collection inside a ZIP file, :class:`PayloadFinder` reads each source from that same payload
(``zipimporter.get_data``) and compiles it once, with the same file name in tracebacks. Any other path entry (another
collection, ansible-core's own module_utils, a directory on the controller, in unit tests or in a payload exploded
for debugging) it declines, and the import system goes on as before. ``sys.meta_path`` is left alone.

Standard library only; Python 3.9+.
"""

from __future__ import annotations

import sys
import zipimport
from importlib.util import spec_from_loader

# The part of a payload's member names that is this collection.
COLLECTION = "ansible_collections/immutable/hosts/"


class PayloadLoader:
    """Runs one module of ours from its source, read from the payload once."""

    def __init__(self, location: str, source: bytes) -> None:
        self.location = location
        self.source = source

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        exec(compile(self.source, self.location, "exec", dont_inherit=True), module.__dict__)  # noqa: S102 - our payload

    def get_source(self, fullname: str) -> str:
        """The source, for tracebacks (linecache asks the module's loader)."""
        return self.source.decode("utf-8")


class PayloadFinder:
    """The path entry finder of one directory of ours inside a ZIP file; ImportError for any other path entry (that is
    how a path hook declines)."""

    def __init__(self, path: str, collection: str = COLLECTION) -> None:
        self.importer = zipimport.zipimporter(path)  # ZipImportError, an ImportError, for a path outside a ZIP file
        if not self.importer.prefix.startswith(collection):
            raise ImportError("not a directory of %s" % collection)

    def find_spec(self, fullname: str, target=None):
        leaf = fullname.rpartition(".")[2]
        archive, prefix = self.importer.archive, self.importer.prefix
        for inner, package in ((leaf + "/__init__.py", True), (leaf + ".py", False)):
            try:
                source = self.importer.get_data(prefix + inner)
            except OSError:
                continue
            location = "%s/%s%s" % (archive, prefix, inner)
            spec = spec_from_loader(fullname, PayloadLoader(location, source), origin=location, is_package=package)
            spec.has_location = True
            if package:
                spec.submodule_search_locations = ["%s/%s%s" % (archive, prefix, leaf)]
            return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here (the ZIP file's directory is zipimport's)."""


def compile_once(collection: str = COLLECTION) -> None:
    """Add the path hook (once per process) and take over the directories of ours that were imported through before,
    which the import system has cached with a zipimporter (the package this file is in, at least)."""

    def hook(path: str) -> PayloadFinder:
        return PayloadFinder(path, collection)

    hook.collection = collection  # type: ignore[attr-defined]
    if not any(getattr(entry, "collection", None) == collection for entry in sys.path_hooks):
        sys.path_hooks.insert(0, hook)
    for path, finder in list(sys.path_importer_cache.items()):
        if isinstance(finder, zipimport.zipimporter):
            try:
                sys.path_importer_cache[path] = PayloadFinder(path, collection)
            except ImportError:
                continue
