# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters of playbooks/upgrade.yml's rollout by rings: which hosts form each ring, and the exact reference of the
digest a ring is rolled out to.

A ring is an inventory group; a host belongs to the first ring (in the order given) whose group holds it, so
``[canary, all]`` is the canaries, then everyone else. Rings with no host of their own are left out.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _imageref as imageref


def _members(groups, name):
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError("rings are inventory group names, not %r" % (name,))
    return list(groups.get(name) or [])


def _rings(rings, groups):
    """[(ring, its own hosts)] for the rings that have hosts of their own, in order."""
    if isinstance(rings, str) or not isinstance(rings, (list, tuple)):
        raise AnsibleFilterError("upgrade_rings is a list of inventory group names, not %r" % (rings,))
    seen, result = set(), []
    for name in rings:
        own = [host for host in _members(groups, name) if host not in seen]
        seen.update(own)
        if own:
            result.append((name, own))
    return result


def rings_present(rings, groups):
    """The rings that have hosts of their own."""
    return [name for name, _hosts in _rings(rings, groups)]


def ring_sizes(rings, groups):
    """The number of hosts of each ring: a play's ``serial``, so that each batch is one ring."""
    return [len(hosts) for _name, hosts in _rings(rings, groups)]


def ring_of(rings, host, groups):
    """The ring of ``host``: the first ring whose group holds it."""
    for name, hosts in _rings(rings, groups):
        if host in hosts:
            return name
    raise AnsibleFilterError("%s is in none of the rings %s" % (host, ", ".join(map(str, rings))))


def image_at_digest(image, digest):
    """``image`` (a registry image, or a full ostree image reference) pinned to ``digest`` instead of its tag:
    ``quay.io/fedora/fedora-silverblue:42`` and ``sha256:...`` give ``quay.io/fedora/fedora-silverblue@sha256:...``."""
    try:
        if not isinstance(digest, str) or not imageref._DIGEST_RE.match(digest):
            raise imageref.InvalidReference("%r is not an image digest (sha256:<64 hex digits>)" % (digest,))
        if isinstance(image, str) and image.startswith("ostree-"):
            parsed = imageref.parse_image_reference(image)
            if parsed.transport != "registry":
                raise imageref.InvalidReference("%s is not fetched from a registry; a digest names registry images" % image)
            name = imageref.parse_registry_name(parsed.name)
            pinned = "%s/%s@%s" % (name.registry, name.repository, digest)
            return imageref.ImageReference(parsed.sigverify, parsed.transport, pinned, parsed.remote).canonical
        name = imageref.parse_registry_name(image)
        return "%s/%s@%s" % (name.registry, name.repository, digest)
    except imageref.InvalidReference as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    def filters(self):
        return {
            "rings_present": rings_present,
            "ring_sizes": ring_sizes,
            "ring_of": ring_of,
            "image_at_digest": image_at_digest,
        }
