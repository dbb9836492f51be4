# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Origin and image references of OSTree deployments, parsed into comparable data.

rpm-ostree stores a container origin verbatim as typed, and other writers normalise it, so the same image can
appear as ``ostree-unverified-registry:X``, ``ostree-unverified-image:registry:X`` or
``ostree-unverified-image:docker://X``.  Modules compare :func:`parse_origin` results, never raw strings.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Union

from ansible_collections.immutable.hosts.plugins.module_utils.common._errors import HostsError
from ansible_collections.immutable.hosts.plugins.module_utils.common._text import check_value

SIGVERIFY_UNVERIFIED = "unverified"
SIGVERIFY_SIGNED = "signed"
SIGVERIFY_REMOTE = "remote"

TRANSPORTS = ("registry", "oci", "oci-archive", "containers-storage", "dir", "docker-archive")

_CHECKSUM_RE = re.compile(r"^[0-9a-f]{64}\Z")
# An ostree ref: components of [A-Za-z0-9_][-._A-Za-z0-9]* separated by "/".
_REF_RE = re.compile(r"^[A-Za-z0-9_][-._A-Za-z0-9]*(/[A-Za-z0-9_][-._A-Za-z0-9]*)*\Z")
_REMOTE_RE = re.compile(r"^[A-Za-z0-9_][-._A-Za-z0-9]*\Z")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}\Z")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_REPO_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_DOMAIN_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$"
)
_FORBIDDEN_CHARS = re.compile(r"[\s\x00;&|`$<>\\\"'(){}*?!]")

DOCKER_HUB = "docker.io"


class InvalidReference(HostsError, ValueError):
    """A reference that cannot be parsed; the message says what is wrong and how to write it."""


@dataclass(frozen=True)
class RegistryName:
    """A registry image name split as container tools understand it."""

    registry: str
    repository: str
    tag: Optional[str]
    digest: Optional[str]

    @property
    def canonical(self) -> str:
        """The fully qualified spelling: registry/repository[:tag][@digest], ``latest`` when neither is given."""
        text = "%s/%s" % (self.registry, self.repository)
        if self.tag:
            text += ":" + self.tag
        if self.digest:
            text += "@" + self.digest
        return text


@dataclass(frozen=True)
class ImageReference:
    """A container image origin: how it is verified, how it is fetched, and which image."""

    sigverify: str
    transport: str
    name: str
    remote: Optional[str] = None

    kind = "container"

    @property
    def registry_name(self) -> Optional[RegistryName]:
        return parse_registry_name(self.name) if self.transport == "registry" else None

    @property
    def normalized_name(self) -> str:
        parsed = self.registry_name
        return parsed.canonical if parsed else self.name

    @property
    def key(self) -> tuple:
        """Identity for comparisons: two references with the same key name the same image, verified the same way."""
        return (self.kind, self.sigverify, self.remote, self.transport, self.normalized_name)

    @property
    def image_key(self) -> tuple:
        """Identity of the image alone, whatever the signature policy."""
        return (self.kind, self.transport, self.normalized_name)

    @property
    def canonical(self) -> str:
        """The spelling ostree-ext prints for this reference (``docker://`` for registries)."""
        if self.sigverify == SIGVERIFY_UNVERIFIED and self.transport == "registry":
            return "ostree-unverified-registry:" + self.name
        transport = "docker://" if self.transport == "registry" else self.transport + ":"
        if self.sigverify == SIGVERIFY_SIGNED:
            prefix = "ostree-image-signed:"
        elif self.sigverify == SIGVERIFY_REMOTE:
            prefix = "ostree-remote-image:%s:" % self.remote
        else:
            prefix = "ostree-unverified-image:"
        return prefix + transport + self.name

    def to_dict(self) -> dict:
        parsed = self.registry_name
        return {
            "kind": self.kind,
            "sigverify": self.sigverify,
            "remote": self.remote,
            "transport": self.transport,
            "image": self.name,
            "registry": parsed.registry if parsed else None,
            "repository": parsed.repository if parsed else None,
            "tag": parsed.tag if parsed else None,
            "digest": parsed.digest if parsed else None,
            "normalized": self.normalized_name,
            "canonical": self.canonical,
        }


@dataclass(frozen=True)
class OstreeRefspec:
    """An ostree refspec origin: ``remote:ref`` or a local ``ref``."""

    remote: Optional[str]
    ref: str

    kind = "refspec"

    @property
    def key(self) -> tuple:
        return (self.kind, self.remote, self.ref)

    @property
    def canonical(self) -> str:
        return "%s:%s" % (self.remote, self.ref) if self.remote else self.ref

    def to_dict(self) -> dict:
        return {"kind": self.kind, "remote": self.remote, "ref": self.ref, "canonical": self.canonical}


@dataclass(frozen=True)
class CommitChecksum:
    """An origin pinned to one commit."""

    checksum: str

    kind = "checksum"

    @property
    def key(self) -> tuple:
        return (self.kind, self.checksum)

    @property
    def canonical(self) -> str:
        return self.checksum

    def to_dict(self) -> dict:
        return {"kind": self.kind, "checksum": self.checksum, "canonical": self.checksum}


Origin = Union[ImageReference, OstreeRefspec, CommitChecksum]

_CONTAINER_SCHEMES = (
    "ostree-unverified-registry",
    "ostree-unverified-image",
    "ostree-image-signed",
    "ostree-remote-registry",
    "ostree-remote-image",
)


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidReference("%s is empty; give a value such as %s" % (what, _EXAMPLES.get(what, "a reference")))
    check_value(value, what, InvalidReference)
    if value.startswith("-"):
        raise InvalidReference("%s %r starts with '-', which a command would read as an option" % (what, value))
    if value != value.strip() or _FORBIDDEN_CHARS.search(value):
        raise InvalidReference("%s %r contains whitespace, quotes or shell metacharacters" % (what, value))
    return value


_EXAMPLES = {
    "origin": "'fedora:fedora/42/x86_64/silverblue' or 'ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42'",
    "image": "'quay.io/fedora/fedora-silverblue:42'",
    "refspec": "'fedora:fedora/42/x86_64/silverblue'",
}


def parse_registry_name(name: str) -> RegistryName:
    """Split a registry image name, normalised as containers/image does (docker.io, library/, latest)."""
    _check_text(name, "image")
    rest, digest = name, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReference("image %r has an invalid digest %r; expected e.g. sha256:<64 hex digits>" % (name, digest))
        digest = digest.lower()
    tag = None
    last_slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > last_slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidReference("image %r has an invalid tag %r" % (name, tag))
    components = rest.split("/")
    if len(components) > 1 and ("." in components[0] or ":" in components[0] or components[0] == "localhost"):
        registry = components[0].lower()
        if not _DOMAIN_RE.match(registry):
            raise InvalidReference("image %r has an invalid registry host %r" % (name, components[0]))
        path = components[1:]
    else:
        registry, path = DOCKER_HUB, components
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and len(path) == 1:
        path = ["library"] + path
    for part in path:
        if not _REPO_COMPONENT_RE.match(part):
            raise InvalidReference(
                "image %r has an invalid repository component %r (lower case letters, digits and . _ - only)" % (name, part)
            )
    if tag is None and digest is None:
        tag = "latest"
    return RegistryName(registry=registry, repository="/".join(path), tag=tag, digest=digest)


def _parse_transport_and_name(text: str, whole: str) -> tuple[str, str]:
    if ":" not in text:
        raise InvalidReference("%r lacks a transport; write e.g. 'registry:%s' or 'docker://%s'" % (whole, text, text))
    transport, name = text.split(":", 1)
    if transport == "docker":
        if not name.startswith("//"):
            raise InvalidReference("%r: the docker transport needs '//', as in 'docker://%s'" % (whole, name))
        transport, name = "registry", name[2:]
    if transport not in TRANSPORTS:
        raise InvalidReference("%r uses unknown transport %r; known: %s, docker://" % (whole, transport, ", ".join(TRANSPORTS)))
    if not name:
        raise InvalidReference("%r names no image after the transport" % whole)
    if transport == "registry":
        parse_registry_name(name)
    return transport, name


def parse_image_reference(text: str) -> ImageReference:
    """Parse an ostree container image reference (``ostree-unverified-registry:...`` and friends)."""
    _check_text(text, "origin")
    scheme, _sep, rest = text.partition(":")
    if scheme not in _CONTAINER_SCHEMES or not rest:
        raise InvalidReference(
            "%r is not an ostree image reference; it must start with one of %s" % (text, ", ".join(_CONTAINER_SCHEMES))
        )
    remote = None
    if scheme in ("ostree-remote-registry", "ostree-remote-image"):
        remote, sep, rest = rest.partition(":")
        if not sep or not _REMOTE_RE.match(remote):
            raise InvalidReference("%r: expected '%s:REMOTE:...' with a valid ostree remote name" % (text, scheme))
    if scheme in ("ostree-unverified-registry", "ostree-remote-registry"):
        rest = "registry:" + rest
    transport, name = _parse_transport_and_name(rest, text)
    if scheme.startswith("ostree-remote"):
        sigverify = SIGVERIFY_REMOTE
    elif scheme == "ostree-image-signed":
        sigverify = SIGVERIFY_SIGNED
    else:
        sigverify = SIGVERIFY_UNVERIFIED
    return ImageReference(sigverify=sigverify, transport=transport, name=name, remote=remote)


def parse_refspec(text: str) -> OstreeRefspec:
    """Parse ``remote:ref`` or ``ref`` (a legacy ``ostree://`` prefix is dropped, as the daemon does)."""
    _check_text(text, "refspec")
    if text.startswith("ostree://"):
        text = text[len("ostree://") :]
    remote, sep, ref = text.rpartition(":")
    if not sep:
        remote, ref = "", text
    if sep and not remote:
        raise InvalidReference("refspec %r has an empty remote; write 'REMOTE:%s' or just '%s'" % (text, ref, ref))
    if remote and not _REMOTE_RE.match(remote):
        raise InvalidReference("refspec %r has an invalid remote name %r" % (text, remote))
    if not _REF_RE.match(ref) or ref.endswith("/"):
        raise InvalidReference("refspec %r has an invalid ref %r; refs look like 'fedora/42/x86_64/silverblue'" % (text, ref))
    return OstreeRefspec(remote=remote or None, ref=ref)


def is_checksum(text: str) -> bool:
    return bool(_CHECKSUM_RE.match(text or ""))


def parse_origin(text: str) -> Origin:
    """Classify and parse an origin string in rpm-ostree's order: image reference, checksum, refspec."""
    _check_text(text, "origin")
    scheme = text.split(":", 1)[0]
    if scheme in _CONTAINER_SCHEMES:
        return parse_image_reference(text)
    if is_checksum(text):
        return CommitChecksum(checksum=text)
    return parse_refspec(text)


def image_from_options(
    image: str, transport: str = "registry", signature: str = SIGVERIFY_SIGNED, remote: Optional[str] = None
) -> ImageReference:
    """Build a reference from module options; ``image`` may also be a full ostree image reference."""
    _check_text(image, "image")
    if image.split(":", 1)[0] in _CONTAINER_SCHEMES:
        full = parse_image_reference(image)
        given = {"signature": signature, "transport": transport, "signature_remote": remote}
        says = {"signature": full.sigverify, "transport": full.transport, "signature_remote": full.remote}
        contradicted = [
            "%s=%s" % (option, given[option])
            for option in ("signature", "transport", "signature_remote")
            if given[option] != says[option] and not (option == "signature_remote" and given[option] is None)
        ]
        if contradicted:
            raise InvalidReference(
                "image %r is a full ostree image reference (signature %s, transport %s%s), which contradicts %s; "
                "give the plain image name with signature and transport, or set them to what the reference says"
                % (
                    image,
                    full.sigverify,
                    full.transport,
                    ", remote %s" % full.remote if full.remote else "",
                    " and ".join(contradicted),
                )
            )
        return full
    if image.startswith("docker://"):
        transport, image = "registry", image[len("docker://") :]
    if transport not in TRANSPORTS:
        raise InvalidReference("unknown transport %r; choose one of %s" % (transport, ", ".join(TRANSPORTS)))
    if signature not in (SIGVERIFY_SIGNED, SIGVERIFY_UNVERIFIED, SIGVERIFY_REMOTE):
        raise InvalidReference("unknown signature policy %r; choose signed, unverified or remote" % signature)
    if signature == SIGVERIFY_REMOTE:
        if not remote or not _REMOTE_RE.match(remote):
            raise InvalidReference("signature 'remote' needs the name of an ostree remote holding the signing keys")
    elif remote:
        raise InvalidReference("a signature remote is only meaningful with signature 'remote'")
    if transport == "registry":
        parse_registry_name(image)
    return ImageReference(sigverify=signature, transport=transport, name=image, remote=remote)


def same_origin(left: Origin, right: Origin) -> bool:
    """True when two parsed origins name the same thing, spelled differently or not."""
    return left.key == right.key


# Architectures as RPM (and OSTree refs) name them, and the OCI/Go names image configs use.
RPM_ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "riscv64", "armhfp", "i686")
OCI_TO_RPM_ARCH = {
    "amd64": "x86_64",
    "arm64": "aarch64",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "arm": "armhfp",
    "386": "i686",
}


def ref_architecture(ref: Optional[str]) -> Optional[str]:
    """The architecture component of an OSTree ref (``fedora/41/x86_64/silverblue``), if it has one."""
    for part in (ref or "").split("/"):
        if part in RPM_ARCHES:
            return part
    return None


def rpm_architecture(name: Optional[str]) -> Optional[str]:
    """An architecture as RPM names it, from an RPM or an OCI name (``amd64`` -> ``x86_64``)."""
    if not name:
        return None
    return OCI_TO_RPM_ARCH.get(name, name)


def origin_to_dict(text: Optional[str]) -> Optional[dict]:
    """Parsed origin as plain data, or an ``invalid`` record for strings that do not parse."""
    if not text:
        return None
    try:
        result = parse_origin(text).to_dict()
    except InvalidReference as exc:
        return {"kind": "invalid", "raw": text, "error": str(exc)}
    result["raw"] = text
    return result
