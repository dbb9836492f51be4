"""Origin and image references: equivalence, difference and rejection, as a table."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import (
    CommitChecksum,
    ImageReference,
    InvalidReference,
    OstreeRefspec,
    image_from_options,
    origin_to_dict,
    parse_origin,
    parse_registry_name,
    same_origin,
)

SB41 = "quay.io/fedora/fedora-silverblue:41"
CSUM = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
DIGEST = "sha256:525a307176388da34e6b6f4f3fc1f589121a122d851b6ce7a36850ffafaf19b9"

EQUAL = [
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-image:registry:" + SB41),
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-image:docker://" + SB41),
    ("ostree-unverified-image:registry:" + SB41, "ostree-unverified-image:docker://" + SB41),
    ("ostree-image-signed:docker://" + SB41, "ostree-image-signed:registry:" + SB41),
    ("ostree-remote-registry:fedora:" + SB41, "ostree-remote-image:fedora:docker://" + SB41),
    ("ostree-remote-registry:fedora:" + SB41, "ostree-remote-image:fedora:registry:" + SB41),
    (
        "ostree-unverified-registry:quay.io/fedora/fedora-silverblue",
        "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:latest",
    ),
    ("ostree-unverified-registry:fedora:41", "ostree-unverified-registry:docker.io/library/fedora:41"),
    ("ostree-unverified-registry:library/fedora:41", "ostree-unverified-registry:docker.io/library/fedora:41"),
    ("ostree-unverified-registry:index.docker.io/library/fedora:41", "ostree-unverified-registry:docker.io/library/fedora:41"),
    ("ostree-unverified-registry:Quay.IO/fedora/fedora-silverblue:41", "ostree-unverified-registry:" + SB41),
    (
        "ostree-unverified-registry:quay.io/x/y@" + DIGEST,
        "ostree-unverified-image:docker://quay.io/x/y@" + DIGEST.upper().replace("SHA256", "sha256"),
    ),
    ("ostree-unverified-image:oci:/var/lib/img", "ostree-unverified-image:oci:/var/lib/img"),
    ("ostree-image-signed:containers-storage:localhost/mine:1", "ostree-image-signed:containers-storage:localhost/mine:1"),
    ("fedora:fedora/41/x86_64/silverblue", "fedora:fedora/41/x86_64/silverblue"),
    ("ostree://fedora:fedora/41/x86_64/silverblue", "fedora:fedora/41/x86_64/silverblue"),
    ("fedora/41/x86_64/silverblue", "fedora/41/x86_64/silverblue"),
    (CSUM, CSUM),
    (
        "ostree-remote-image:fedora:docker://quay.io/fedora/fedora-coreos:stable",
        "ostree-remote-registry:fedora:quay.io/fedora/fedora-coreos:stable",
    ),
    ("ostree-unverified-registry:localhost:5000/lab/os:1", "ostree-unverified-image:docker://localhost:5000/lab/os:1"),
]

DIFFERENT = [
    ("ostree-unverified-registry:" + SB41, "ostree-image-signed:docker://" + SB41),
    ("ostree-image-signed:docker://" + SB41, "ostree-remote-registry:fedora:" + SB41),
    ("ostree-remote-registry:fedora:" + SB41, "ostree-remote-registry:fedora-coreos:" + SB41),
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:42"),
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-registry:quay.io/fedora/fedora-kinoite:41"),
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-registry:quay.io/fedora/fedora-silverblue@" + DIGEST),
    ("ostree-unverified-registry:" + SB41, "ostree-unverified-image:containers-storage:" + SB41),
    ("ostree-unverified-image:oci:/var/lib/img", "ostree-unverified-image:oci-archive:/var/lib/img"),
    (
        "ostree-unverified-registry:ghcr.io/ublue-os/silverblue-main:41",
        "ostree-unverified-registry:quay.io/ublue-os/silverblue-main:41",
    ),
    ("fedora:fedora/41/x86_64/silverblue", "fedora:fedora/42/x86_64/silverblue"),
    ("fedora:fedora/41/x86_64/silverblue", "fedora/41/x86_64/silverblue"),
    ("fedora:fedora/41/x86_64/silverblue", "updates:fedora/41/x86_64/silverblue"),
    ("fedora:fedora/41/x86_64/silverblue", "fedora:fedora/41/aarch64/silverblue"),
    (CSUM, "fedora:fedora/41/x86_64/silverblue"),
    (CSUM, CSUM[:-1] + "0"),
    ("ostree-unverified-registry:fedora:41", "fedora:41"),
]

INVALID = [
    "",
    "   ",
    "ostree-unverified-registry:",
    "ostree-unverified-image:quay.io/fedora/fedora-silverblue:41",
    "ostree-unverified-image:docker:quay.io/fedora/x:41",
    "ostree-unverified-image:ftp:quay.io/fedora/x:41",
    "ostree-image-signed:registry:",
    "ostree-remote-registry:" + SB41.replace(":", ""),
    "ostree-remote-image:fedora",
    "ostree-unverified-registry:quay.io/Fedora/Silverblue:41",
    "ostree-unverified-registry:quay.io/fedora/x:bad tag",
    "ostree-unverified-registry:quay.io/fedora/x@sha256:xyz",
    "ostree-unverified-registry:quay.io/fedora/x:41;rm -rf /",
    "fedora:fedora/41/x86_64/silverblue\n",
    ":fedora/41/x86_64/silverblue",
    "fedora:",
    "fedora:fedora//41",
    "fedora:/fedora/41",
    "fe dora:fedora/41",
    "fedora:fedora/41/$(reboot)",
    "fedora:fedora/41/x86_64/silverblue/",
    "ostree-unverified-registry:quay.io/fedora/x:" + "a" * 129,
]


@pytest.mark.parametrize(("left", "right"), EQUAL)
def test_equivalent_spellings_compare_equal(left, right):
    assert same_origin(parse_origin(left), parse_origin(right))
    assert same_origin(parse_origin(right), parse_origin(left))
    assert parse_origin(left).canonical == parse_origin(right).canonical or parse_origin(left).kind == "container"


@pytest.mark.parametrize(("left", "right"), DIFFERENT)
def test_different_references_compare_different(left, right):
    assert not same_origin(parse_origin(left), parse_origin(right))


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references_are_rejected_with_a_message(text):
    with pytest.raises(InvalidReference) as err:
        parse_origin(text)
    assert len(str(err.value)) > 15


def test_table_is_large_enough():
    assert len(EQUAL) + len(DIFFERENT) + len(INVALID) >= 40


def test_classification_order_follows_rpm_ostree():
    assert isinstance(parse_origin("ostree-image-signed:docker://" + SB41), ImageReference)
    assert isinstance(parse_origin(CSUM), CommitChecksum)
    assert isinstance(parse_origin("fedora:fedora/41/x86_64/silverblue"), OstreeRefspec)


def test_image_reference_fields():
    ref = parse_origin("ostree-remote-image:fedora:docker://quay.io/fedora/fedora-coreos:stable")
    assert (ref.sigverify, ref.remote, ref.transport, ref.name) == (
        "remote",
        "fedora",
        "registry",
        "quay.io/fedora/fedora-coreos:stable",
    )
    assert ref.canonical == "ostree-remote-image:fedora:docker://quay.io/fedora/fedora-coreos:stable"
    unverified = parse_origin("ostree-unverified-image:docker://" + SB41)
    assert unverified.canonical == "ostree-unverified-registry:" + SB41
    signed = parse_origin("ostree-image-signed:registry:" + SB41)
    assert signed.canonical == "ostree-image-signed:docker://" + SB41


def test_refspec_fields():
    spec = parse_origin("fedora:fedora/42/x86_64/kinoite")
    assert (spec.remote, spec.ref) == ("fedora", "fedora/42/x86_64/kinoite")
    local = parse_origin("fedora/42/x86_64/kinoite")
    assert local.remote is None and local.canonical == "fedora/42/x86_64/kinoite"


@pytest.mark.parametrize(
    ("name", "registry", "repository", "tag", "digest"),
    [
        (SB41, "quay.io", "fedora/fedora-silverblue", "41", None),
        ("fedora", "docker.io", "library/fedora", "latest", None),
        ("localhost:5000/a/b", "localhost:5000", "a/b", "latest", None),
        ("localhost/a", "localhost", "a", "latest", None),
        ("quay.io/x/y:1@" + DIGEST, "quay.io", "x/y", "1", DIGEST),
        ("ghcr.io/ublue-os/bazzite-deck:stable", "ghcr.io", "ublue-os/bazzite-deck", "stable", None),
    ],
)
def test_registry_name_split(name, registry, repository, tag, digest):
    parsed = parse_registry_name(name)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (registry, repository, tag, digest)


def test_tag_and_digest_are_different_references():
    by_tag = image_from_options(SB41, signature="signed")
    by_digest = image_from_options("quay.io/fedora/fedora-silverblue@" + DIGEST, signature="signed")
    assert not same_origin(by_tag, by_digest) and same_origin(by_digest, by_digest)


def test_image_from_options_builds_what_rebase_would_write():
    assert image_from_options(SB41).canonical == "ostree-image-signed:docker://" + SB41
    assert image_from_options(SB41, signature="unverified").canonical == "ostree-unverified-registry:" + SB41
    remote = image_from_options(SB41, signature="remote", remote="fedora")
    assert remote.canonical == "ostree-remote-image:fedora:docker://" + SB41
    assert image_from_options("docker://" + SB41).transport == "registry"
    archive = image_from_options("/srv/os.tar", transport="oci-archive", signature="unverified")
    assert archive.canonical == "ostree-unverified-image:oci-archive:/srv/os.tar"
    full = image_from_options("ostree-unverified-registry:" + SB41, signature="unverified")
    assert full.sigverify == "unverified"
    oci = image_from_options("ostree-image-signed:oci:/srv/os", transport="oci")
    assert (oci.sigverify, oci.transport, oci.name) == ("signed", "oci", "/srv/os")


@pytest.mark.parametrize(
    ("image", "kwargs", "contradicted"),
    [
        # Before: the default signature=signed was ignored and the host was rebased unverified without a word.
        ("ostree-unverified-registry:" + SB41, {}, "signature=signed"),
        ("ostree-image-signed:docker://" + SB41, {"signature": "unverified"}, "signature=unverified"),
        ("ostree-unverified-image:oci:/srv/os", {"signature": "unverified"}, "transport=registry"),
        ("ostree-remote-image:fedora:docker://" + SB41, {"signature": "remote", "remote": "other"}, "signature_remote=other"),
    ],
)
def test_a_full_reference_that_contradicts_the_options_is_an_error(image, kwargs, contradicted):
    with pytest.raises(InvalidReference, match="contradicts %s" % contradicted):
        image_from_options(image, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": SB41, "transport": "ftp"}, "unknown transport"),
        ({"image": SB41, "signature": "maybe"}, "unknown signature"),
        ({"image": SB41, "signature": "remote"}, "needs the name of an ostree remote"),
        ({"image": SB41, "signature": "signed", "remote": "fedora"}, "only meaningful"),
        ({"image": "quay.io/UPPER/x"}, "invalid repository"),
    ],
)
def test_image_from_options_rejects_bad_combinations(kwargs, message):
    with pytest.raises(InvalidReference, match=message):
        image_from_options(**kwargs)


def test_origin_to_dict_reports_invalid_strings_instead_of_raising():
    assert origin_to_dict(None) is None
    bad = origin_to_dict("fedora:fedora//41")
    assert bad["kind"] == "invalid" and bad["raw"] == "fedora:fedora//41"
    good = origin_to_dict("ostree-image-signed:docker://" + SB41)
    assert good["kind"] == "container" and good["tag"] == "41" and good["normalized"] == SB41
