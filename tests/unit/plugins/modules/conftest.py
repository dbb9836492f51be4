"""Fixtures for module tests (the helpers live in helpers.py)."""

from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import ostree_module  # noqa: F401
