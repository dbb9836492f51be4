"""What the unit tests need from ansible-core that older releases lack (2.16, the oldest supported, has no
``ansible.module_utils.testing``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19

    @contextlib.contextmanager
    def patch_module_args(args: dict | None = None) -> Iterator[None]:
        """The module arguments AnsibleModule reads, as ansible-core 2.19's helper of the same name sets them."""
        from ansible.module_utils import basic

        previous = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = previous


__all__ = ["patch_module_args"]
