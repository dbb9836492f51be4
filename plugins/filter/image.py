# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of the image_build role: a group's image document out of its hosts' documents."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.image import _context as context


def image_group(documents):
    """``{"document": the image's, "per_host": {host: [resources of its own]}}`` (``_context.split_group``)."""
    if not isinstance(documents, dict):
        raise AnsibleFilterError("image_group takes a mapping of host names to documents, not %r" % type(documents).__name__)
    try:
        return context.split_group({str(host): dict(document) for host, document in documents.items()})
    except (HostsError, TypeError, ValueError) as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {"image_group": image_group}
