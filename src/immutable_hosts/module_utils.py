"""The collection's module_utils on the controller: the parsers its modules run on hosts, applied here to output read
over SSH (``immutable-hosts status``), so both read a host the same way.

The copy imported is the one this CLI comes with: the collection its wheel carries (setup.py), else the checkout it
runs from; never an installed collection of another version. A collection already imported in this process (a test
that put a collection tree on ``sys.path``) is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from pathlib import Path

from immutable_hosts import drift

PACKAGE = "ansible_collections.immutable.hosts"


def collection_root() -> Path:
    bundled = drift.BUNDLED / "ansible_collections" / "immutable" / "hosts"
    if (bundled / "plugins" / "module_utils").is_dir():
        return bundled
    if drift.is_checkout(drift.CHECKOUT):
        return drift.CHECKOUT
    raise drift.DriftError(
        f"this immutable-hosts has no copy of the collection (neither {bundled} nor a checkout): reinstall it with pip"
    )


def _namespace(name: str, path: list[str]) -> types.ModuleType:
    """A package made of directories only (as ansible_collections is), importing its children from ``path``."""
    module = types.ModuleType(name)
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = path
    module.__spec__, module.__path__ = spec, path
    return module


def _install(root: Path) -> None:
    parent = None
    for name, path in (("ansible_collections", []), ("ansible_collections.immutable", []), (PACKAGE, [str(root)])):
        module = sys.modules.get(name)
        if module is None:
            module = sys.modules[name] = _namespace(name, path)
            if parent is not None:
                setattr(parent, name.rsplit(".", 1)[1], module)
        parent = module


def load(name: str) -> types.ModuleType:
    """``ansible_collections.immutable.hosts.plugins.module_utils.NAME`` (``ostree._facts``...)."""
    if PACKAGE not in sys.modules:
        _install(collection_root())
    return importlib.import_module(f"{PACKAGE}.plugins.module_utils.{name}")
