# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a registry holds for an image's tag, read from the host as rpm-ostree would pull it: its digest, and the
packages an image built by immutable.hosts provides (its label ``io.immutable-hosts.packages``).

Image mode follows a built image by digest: the tag is resolved once per run (``skopeo inspect``, with the host's
``certs.d`` and the credentials rpm-ostree uses, the first of ``/run/ostree/auth.json``, ``/etc/ostree/auth.json``,
``/usr/lib/ostree/auth.json``), and the rebase and the layered packages read the same answer.

Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import (
    ImageReference,
    InvalidReference,
    RegistryName,
    parse_origin,
    parse_registry_name,
)

PACKAGES_LABEL = "io.immutable-hosts.packages"
AUTH_FILES = ("/run/ostree/auth.json", "/etc/ostree/auth.json", "/usr/lib/ostree/auth.json")
ABSENT = ("manifest unknown", "name unknown")


class RegistryError(HostsError, ValueError):
    """The registry cannot say what the tag is."""


def packages_label(names: list) -> str:
    """The label's value for the packages an image installs: sorted, comma-separated."""
    return ",".join(sorted(set(names)))


def provided_packages(labels: dict) -> list:
    return sorted({name.strip() for name in str(labels.get(PACKAGES_LABEL) or "").split(",") if name.strip()})


def pinned(name: RegistryName, digest: str) -> str:
    """``registry/repository@digest``: the tag resolved, as rpm-ostree shows a digest-pinned image."""
    return "%s/%s@%s" % (name.registry, name.repository, digest)


def skopeo_inspect(host, reference: str, options: Sequence[str] = (), error: type = RegistryError) -> Optional[dict]:
    """``skopeo inspect --no-tags OPTIONS docker://reference``: its document, or None when the registry has no such
    tag or repository; any other failure raises ``error`` with skopeo's words."""
    result = host.run(["skopeo", "inspect", "--no-tags", *options, "docker://" + reference], check=False, timeout=300)
    if result.rc != 0:
        message = (result.stderr or result.stdout).strip()
        if any(marker in message.lower() for marker in ABSENT):
            return None
        raise error("skopeo inspect docker://%s failed: %s" % (reference, message))
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise error("skopeo inspect docker://%s printed no JSON" % reference) from None


def inspect_tag(host, image: str) -> dict:
    """``{"name", "digest", "pinned", "packages"}`` of the image ``image`` (a registry name with a tag) now, read once
    per run; a tag the registry does not have is an error that says so."""
    name = parse_registry_name(image)
    if name.digest:
        raise RegistryError("%s is pinned by digest already; image mode follows a tag, resolved at each run" % image)

    def read() -> dict:
        auth = next((path for path in AUTH_FILES if host.exists(path)), None)
        found = skopeo_inspect(host, name.canonical, ["--authfile", auth] if auth else ["--no-creds"])
        if found is None:
            raise RegistryError("the registry has no image %s (build it first: immutable-hosts image build)" % image)
        digest = str(found.get("Digest") or "")
        if not digest.startswith("sha256:"):
            raise RegistryError("skopeo inspect docker://%s gave no digest" % name.canonical)
        return {
            "name": name.canonical,
            "digest": digest,
            "pinned": pinned(name, digest),
            "packages": provided_packages(found.get("Labels") or {}),
        }

    return host.once(("registry-tag", name.canonical), read)


def follows(origin: Optional[str], pinned_name: str) -> bool:
    """Whether a deployment's origin (``ostree-image-signed:docker://registry/repo@sha256:...``) is ``pinned_name``."""
    try:
        current = parse_origin(origin) if origin else None
    except InvalidReference:
        return False
    if not isinstance(current, ImageReference) or current.transport != "registry":
        return False
    have, wanted = current.registry_name, parse_registry_name(pinned_name)
    return (have.registry, have.repository, have.digest) == (wanted.registry, wanted.repository, wanted.digest)
