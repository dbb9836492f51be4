"""Fixtures for module tests (the helpers live in helpers.py)."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils import ostree_host
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import call_module


@pytest.fixture
def ostree_module(tmp_path, monkeypatch, capsys):
    """Run an rpm-ostree module on a sysroot under tmp_path with the given tools: ``run(module, args, tools)``."""

    def run(module, args, tools):
        monkeypatch.setattr(ostree_host, "ROOT", str(tmp_path))
        monkeypatch.setattr(ostree_host, "make_runner", tools.runner)
        return call_module(module, args, capsys)

    return run
