"""The rollout filters of playbooks/upgrade.yml: rings as serial batches, a host's ring, an image pinned to a digest."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.immutable.hosts.plugins.filter.rollout import image_at_digest, ring_of, ring_sizes, rings_present

GROUPS = {
    "all": ["ws-1", "ws-2", "ws-3", "ws-4", "mbp-1"],
    "canary": ["ws-1", "mbp-1"],
    "early": ["ws-1", "ws-2"],
    "empty": [],
    "ungrouped": [],
}
DIGEST = "sha256:0bc09be4c0bb61c5f9afba0e48afe050a54ba58d4a6b2205a45acc8be8c949ce"


def test_each_ring_holds_the_hosts_no_earlier_ring_holds():
    rings = ["canary", "early", "empty", "missing", "all"]
    assert rings_present(rings, GROUPS) == ["canary", "early", "all"]
    assert ring_sizes(rings, GROUPS) == [2, 1, 2]
    assert [ring_of(rings, host, GROUPS) for host in GROUPS["all"]] == ["canary", "early", "all", "all", "canary"]


def test_bad_rings_are_refused():
    with pytest.raises(AnsibleFilterError, match="list of inventory group names"):
        ring_sizes("canary,all", GROUPS)
    with pytest.raises(AnsibleFilterError, match="in none of the rings"):
        ring_of(["canary"], "ws-3", GROUPS)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("quay.io/fedora/fedora-silverblue:42", "quay.io/fedora/fedora-silverblue@" + DIGEST),
        ("quay.io/fedora/fedora-silverblue@sha256:" + "1" * 64, "quay.io/fedora/fedora-silverblue@" + DIGEST),
        ("fedora:41", "docker.io/library/fedora@" + DIGEST),
        (
            "ostree-image-signed:docker://registry.lab:5000/fleet/silverblue:42",
            "ostree-image-signed:docker://registry.lab:5000/fleet/silverblue@" + DIGEST,
        ),
        (
            "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:41",
            "ostree-unverified-registry:quay.io/fedora/fedora-silverblue@" + DIGEST,
        ),
    ],
)
def test_an_image_pinned_to_a_digest(image, pinned):
    assert image_at_digest(image, DIGEST) == pinned


@pytest.mark.parametrize(
    ("image", "digest", "message"),
    [
        ("quay.io/fedora/fedora-silverblue:42", "latest", "is not an image digest"),
        ("quay.io/fedora/fedora-silverblue:42", None, "is not an image digest"),
        ("ostree-unverified-image:oci:/var/images/x", DIGEST, "not fetched from a registry"),
        ("quay.io/Fedora/x:42", DIGEST, "invalid repository component"),
    ],
)
def test_what_cannot_be_pinned(image, digest, message):
    with pytest.raises(AnsibleFilterError, match=message):
        image_at_digest(image, digest)
