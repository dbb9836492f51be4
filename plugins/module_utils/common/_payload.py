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

Compiling once is still most of what the import costs (about 50 ms of ``host_state``'s 65 on a lab host), so the
compiled code is also kept between runs, by root only, in ``/var/cache/immutable-hosts/bytecode/<python tag>/``
(:class:`BytecodeCache`): one file per source, named by the SHA-256 of the Python version's bytecode magic, the
file's name in the collection and its bytes, so an entry is only ever used for exactly the source it was compiled
from, and a new version of the collection simply adds entries. The directories are opened from ``/`` as
:mod:`._files` opens root's (each belonging to root and writable by nobody else, no link followed) and made 0700;
an entry is a regular file of root's, written atomically. A real run writes what it compiled (:func:`keep_compiled`,
called by the scaffold once AnsibleModule knows the run is not a check); a check run only reads, so it changes
nothing on the host. When a run writes, the entries older than 30 days that it did not use are removed (a later run
that needs one compiles and keeps it again). The cache never fails a module: a directory or an entry that cannot be
used is compiled around.

Standard library only; Python 3.9+.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
import time
import zipimport
from importlib.util import MAGIC_NUMBER, spec_from_loader
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as files
from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError

# The part of a payload's member names that is this collection.
COLLECTION = "ansible_collections/immutable/hosts/"
CACHE = "/var/cache/immutable-hosts/bytecode"
UNUSED_DAYS = 30
MAX_ENTRY = 4 * 1024 * 1024


class BytecodeCache:
    """Code objects of our files, compiled once and kept between runs (see the module's docstring)."""

    def __init__(self, root: str = CACHE, enabled: Optional[bool] = None) -> None:
        self.path = "%s/%s" % (root, sys.implementation.cache_tag)
        self.root = root
        self.enabled = os.geteuid() == 0 if enabled is None else enabled
        self._directory = None  # the open cache directory; False once it proved missing or unusable
        self.compiled: dict = {}  # this run's new entries: key -> code
        self.used: set = set()

    @staticmethod
    def key(member: str, source: bytes) -> str:
        return hashlib.sha256(MAGIC_NUMBER + member.encode("utf-8") + b"\0" + source).hexdigest()

    def code(self, member: str, source: bytes):
        """The code of ``source`` (the file ``member`` of the payload): from the cache, else compiled now."""
        key = self.key(member, source)
        self.used.add(key)
        data = self._read(key)
        if data is not None:
            with contextlib.suppress(EOFError, ValueError, TypeError):
                return marshal.loads(data)  # noqa: S302 - root's own entry in a root-only directory, named by the source's hash
        code = compile(source, member, "exec", dont_inherit=True)
        self.compiled[key] = code
        return code

    def _read(self, key: str):
        if not self.enabled:
            return None
        if self._directory is None:
            try:
                self._directory = files.open_directory(self.path) or False
            except (OSError, HostsError):
                self._directory = False
        if not self._directory:
            return None
        try:
            return self._directory.read_bytes(key, MAX_ENTRY)
        except (OSError, HostsError):
            return None

    def save(self) -> None:
        """Write this run's new entries, and remove those older than ``UNUSED_DAYS`` that this run did not use."""
        if not self.enabled or not self.compiled:
            return
        with contextlib.suppress(OSError, HostsError):
            directory = files.open_directory(self.path, create={self.root: 0o700, self.path: 0o700})
            if directory is None:
                return
            with directory:
                for key, code in sorted(self.compiled.items()):
                    directory.write(key, marshal.dumps(code), 0o600)
                self.compiled = {}
                stale = time.time() - UNUSED_DAYS * 86400
                for name in directory.names():
                    if name in self.used:
                        continue
                    info = os.stat(name, dir_fd=directory.fd, follow_symlinks=False)
                    if info.st_mtime < stale:
                        directory.remove(name)


class PayloadLoader:
    """Runs one module of ours from its source, read from the payload once and compiled at most once (the code
    names the file as the collection does, ``ansible_collections/immutable/hosts/...``, the same in every run)."""

    def __init__(self, member: str, source: bytes, cache: BytecodeCache) -> None:
        self.member = member
        self.source = source
        self.cache = cache

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module) -> None:
        exec(self.cache.code(self.member, self.source), module.__dict__)  # noqa: S102 - our payload's own code

    def get_source(self, fullname: str) -> str:
        """The source, for tracebacks (linecache asks the module's loader)."""
        return self.source.decode("utf-8")


class PayloadFinder:
    """The path entry finder of one directory of ours inside a ZIP file; ImportError for any other path entry (that is
    how a path hook declines)."""

    def __init__(self, path: str, collection: str = COLLECTION, cache: Optional[BytecodeCache] = None) -> None:
        self.importer = zipimport.zipimporter(path)  # ZipImportError, an ImportError, for a path outside a ZIP file
        if not self.importer.prefix.startswith(collection):
            raise ImportError("not a directory of %s" % collection)
        self.cache = cache if cache is not None else BytecodeCache(enabled=False)

    def find_spec(self, fullname: str, target=None):
        leaf = fullname.rpartition(".")[2]
        archive, prefix = self.importer.archive, self.importer.prefix
        for inner, package in ((leaf + "/__init__.py", True), (leaf + ".py", False)):
            try:
                source = self.importer.get_data(prefix + inner)
            except OSError:
                continue
            location = "%s/%s%s" % (archive, prefix, inner)
            loader = PayloadLoader(prefix + inner, source, self.cache)
            spec = spec_from_loader(fullname, loader, origin=location, is_package=package)
            spec.has_location = True
            if package:
                spec.submodule_search_locations = ["%s/%s%s" % (archive, prefix, leaf)]
            return spec
        return None

    def invalidate_caches(self) -> None:
        """Nothing cached here (the ZIP file's directory is zipimport's)."""


_CACHE: Optional[BytecodeCache] = None  # the cache of the hook compile_once added


def compile_once(collection: str = COLLECTION, cache: Optional[BytecodeCache] = None) -> None:
    """Add the path hook (once per process) and take over the directories of ours that were imported through before,
    which the import system has cached with a zipimporter (the package this file is in, at least)."""
    global _CACHE
    if any(getattr(entry, "collection", None) == collection for entry in sys.path_hooks):
        return
    _CACHE = cache if cache is not None else BytecodeCache()

    def hook(path: str) -> PayloadFinder:
        return PayloadFinder(path, collection, _CACHE)

    hook.collection = collection  # type: ignore[attr-defined]
    sys.path_hooks.insert(0, hook)
    for path, finder in list(sys.path_importer_cache.items()):
        if isinstance(finder, zipimport.zipimporter):
            with contextlib.suppress(ImportError):
                sys.path_importer_cache[path] = hook(path)


def keep_compiled() -> None:
    """A real run (not a check) keeps what it compiled for the next runs; nothing without :func:`compile_once`."""
    if _CACHE is not None:
        _CACHE.save()
