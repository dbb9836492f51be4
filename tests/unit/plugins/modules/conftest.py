"""Fixtures for module tests (the helpers live in helpers.py)."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import run_unit


@pytest.fixture
def ostree_module(tmp_path, capsys):
    """Run an rpm-ostree module on a sysroot under tmp_path with the given tools: ``run(module, args, tools)``."""

    def run(module, args, tools):
        return run_unit(module.UNIT, args, Host(runner=tools.runner(), root=str(tmp_path)), capsys)

    return run
