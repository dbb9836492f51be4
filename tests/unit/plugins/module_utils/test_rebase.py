"""Rebase planning: parsed comparison, ref completion, the signed two-step, and command lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _rebase as rebase
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import InvalidReference

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SB41 = "quay.io/fedora/fedora-silverblue:41"
UBLUE = "ghcr.io/ublue-os/silverblue-main:42"
POLICY = json.dumps(
    {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                "": [{"type": "insecureAcceptAnything"}],
                "quay.io/fedora": [{"type": "sigstoreSigned", "keyPath": "/etc/pki/containers/fedora.pub"}],
                "ghcr.io/ublue-os/untrusted": [{"type": "insecureAcceptAnything"}],
            }
        },
    }
)


def merge_of(name: str) -> dict:
    return rpm_ostree.pick(rpm_ostree.parse_status((FIXTURES / name).read_text()), "merge")


CONTAINER = merge_of("rpm-ostree-status-container-origin.json")  # ostree-image-signed:docker://quay.io/...:41
REFSPEC = merge_of("rpm-ostree-status-plain-silverblue.json")  # fedora:fedora/41/x86_64/silverblue
STAGED = merge_of("rpm-ostree-status-layered-staged-pinned.json")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image": SB41},
        {"image": "docker://" + SB41},
        {"image": "ostree-image-signed:registry:" + SB41},
        {"image": "Quay.io/fedora/fedora-silverblue:41"},
    ],
)
def test_same_image_spelled_differently_is_no_change(kwargs):
    plan = rebase.plan_rebase(CONTAINER, rebase.desired_origin(**kwargs), policy_text=POLICY)
    assert plan["changed"] is False and plan["step"] == "none"


def test_signature_policy_change_is_a_rebase():
    plan = rebase.plan_rebase(CONTAINER, rebase.desired_origin(image=SB41, signature="unverified"))
    assert plan["changed"] and plan["target"].canonical == "ostree-unverified-registry:" + SB41


def test_ref_rebase_and_bare_ref_keeps_the_remote():
    same = rebase.plan_rebase(REFSPEC, rebase.desired_origin(ref="fedora/41/x86_64/silverblue"))
    assert same["changed"] is False
    plan = rebase.plan_rebase(REFSPEC, rebase.desired_origin(ref="fedora/42/x86_64/silverblue"))
    assert plan["changed"] and plan["target"].canonical == "fedora:fedora/42/x86_64/silverblue"
    assert rebase.rpm_ostree_argv(plan["target"]) == ["rebase", "fedora:fedora/42/x86_64/silverblue"]
    assert plan["before"]["origin"] == "fedora:fedora/41/x86_64/silverblue"


def test_compared_against_the_staged_deployment():
    assert rebase.plan_rebase(STAGED, rebase.desired_origin(ref="fedora:fedora/41/x86_64/silverblue"))["changed"] is False


def test_signed_image_with_policy_rebases_directly():
    plan = rebase.plan_rebase(REFSPEC, rebase.desired_origin(image=SB41), policy_text=POLICY)
    assert plan["step"] == "rebase" and plan["message"] == ""
    assert rebase.rpm_ostree_argv(plan["target"], bypass_driver=True) == [
        "rebase",
        "--bypass-driver",
        "ostree-image-signed:docker://" + SB41,
    ]


def test_a_lone_insecure_default_is_named_as_what_blocks_a_signed_image():
    lone = json.loads(POLICY)
    lone["default"] = [{"type": "insecureAcceptAnything"}]
    plan = rebase.plan_rebase(REFSPEC, rebase.desired_origin(image=SB41), policy_text=json.dumps(lone))
    assert plan["step"] == "rebase" and "default is insecureAcceptAnything alone" in plan["message"]
    assert rebase.default_accepts_anything(json.dumps(lone)) and not rebase.default_accepts_anything(POLICY)
    lone["default"].append({"type": "reject"})
    assert not rebase.default_accepts_anything(json.dumps(lone))


def test_signed_image_without_policy_asks_for_bootstrap_or_takes_the_first_step():
    plain = rebase.plan_rebase(REFSPEC, rebase.desired_origin(image=UBLUE), policy_text=POLICY)
    assert plain["step"] == "rebase" and "bootstrap_unverified" in plain["message"]
    first = rebase.plan_rebase(REFSPEC, rebase.desired_origin(image=UBLUE), policy_text=POLICY, bootstrap_unverified=True)
    assert first["step"] == "bootstrap" and first["target"].canonical == "ostree-unverified-registry:" + UBLUE
    on_unverified = dict(REFSPEC, origin="ostree-unverified-registry:" + UBLUE)
    blocked = rebase.plan_rebase(on_unverified, rebase.desired_origin(image=UBLUE), policy_text=POLICY, bootstrap_unverified=True)
    assert blocked["step"] == "blocked" and blocked["changed"] is False
    with_policy = json.loads(POLICY)
    with_policy["transports"]["docker"]["ghcr.io/ublue-os"] = [
        {"type": "sigstoreSigned", "keyPath": "/etc/pki/containers/ublue-os.pub"}
    ]
    second = rebase.plan_rebase(
        on_unverified, rebase.desired_origin(image=UBLUE), policy_text=json.dumps(with_policy), bootstrap_unverified=True
    )
    assert second["step"] == "rebase" and second["target"].canonical == "ostree-image-signed:docker://" + UBLUE


@pytest.mark.parametrize(
    ("image", "present"),
    [
        ("quay.io/fedora/fedora-silverblue:42", True),
        ("quay.io/fedora", True),
        ("quay.io/fedora-lab/other:1", False),
        ("ghcr.io/ublue-os/untrusted/x:1", False),
        ("docker.io/library/fedora:41", False),
    ],
)
def test_policy_scope_resolution(image, present):
    assert rebase.verifying_policy_present(POLICY, rebase.desired_origin(image=image)) is present


def test_policy_default_and_garbage():
    strict = json.dumps({"default": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}]})
    assert rebase.verifying_policy_present(strict, rebase.desired_origin(image=SB41)) is True
    assert rebase.verifying_policy_present("{not json", rebase.desired_origin(image=SB41)) is False
    assert rebase.verifying_policy_present(None, rebase.desired_origin(image=SB41)) is False


def test_bootc_command_lines():
    assert rebase.bootc_argv(rebase.desired_origin(image=SB41)) == [
        "switch",
        "--transport",
        "registry",
        "--enforce-container-sigpolicy",
        "--",
        SB41,
    ]
    assert rebase.bootc_argv(rebase.desired_origin(image=SB41, signature="unverified")) == [
        "switch",
        "--transport",
        "registry",
        "--",
        SB41,
    ]
    # Before: an oci: path "-h" went to bootc as an option; bootc printed its help, exited 0, nothing was rebased.
    with pytest.raises(InvalidReference, match="starts with '-'"):
        rebase.desired_origin(image="-h", transport="oci", signature="unverified")
    dashed = rebase.desired_origin(image="/srv/-h", transport="oci", signature="unverified")
    assert rebase.bootc_argv(dashed)[-2:] == ["--", "/srv/-h"]
    with pytest.raises(InvalidReference, match="container images only"):
        rebase.bootc_argv(rebase.desired_origin(ref="fedora:fedora/42/x86_64/silverblue"))
    with pytest.raises(InvalidReference, match="ostree remote"):
        rebase.bootc_argv(rebase.desired_origin(image=SB41, signature="remote", signature_remote="fedora"))


BAD = [
    {},
    {"ref": "fedora:fedora/42", "image": SB41},
    {"ref": "fedora:"},
    {"ref": "fedora:fedora//42"},
    {"ref": "fedora:fedora/42;reboot"},
    {"ref": " fedora:fedora/42"},
    {"ref": "fedora:fedora/42\n"},
    {"image": "quay.io/Fedora/x:42"},
    {"image": "quay.io/fedora/x:42 --reboot"},
    {"image": "quay.io/fedora/x@sha256:1234"},
    {"image": SB41, "transport": "ftp"},
    {"image": SB41, "signature": "remote"},
    {"image": SB41, "signature": "signed", "signature_remote": "fedora"},
    {"image": SB41, "signature": "sometimes"},
    {"image": "ostree-unverified-image:quay.io/x:1"},
    {"image": "$(reboot)"},
]


@pytest.mark.parametrize("kwargs", BAD)
def test_bad_references_are_rejected(kwargs):
    with pytest.raises(InvalidReference):
        rebase.desired_origin(**kwargs)
