# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rebasing: which origin the host should follow, compared by meaning with the one it follows now.

A rebase to the origin the pending deployment already has would fail with "Old and new refs are equal", and a
different spelling of the same image is no change at all, so the plan compares parsed references.

Signed images whose verification policy ships inside the image itself (Universal Blue and others) need two steps:
rebase unverified, boot it (the image brings its ``/etc/containers/policy.json`` and keys), then rebase signed.
:func:`plan_rebase` takes the first step when ``bootstrap_unverified`` is set and no verifying policy exists yet.

Pure functions, standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.imageref import (
    SIGVERIFY_SIGNED,
    SIGVERIFY_UNVERIFIED,
    ImageReference,
    InvalidReference,
    Origin,
    OstreeRefspec,
    image_from_options,
    parse_origin,
    parse_refspec,
    same_origin,
)

VERIFYING_REQUIREMENTS = ("signedBy", "sigstoreSigned")


def desired_origin(
    ref: Optional[str] = None,
    image: Optional[str] = None,
    transport: str = "registry",
    signature: str = SIGVERIFY_SIGNED,
    signature_remote: Optional[str] = None,
) -> Origin:
    if bool(ref) == bool(image):
        raise InvalidReference("give exactly one of ref and image")
    if ref:
        return parse_refspec(ref)
    return image_from_options(image, transport=transport, signature=signature, remote=signature_remote)


def current_origin(deployment: dict) -> Optional[Origin]:
    raw = deployment.get("origin")
    if not raw:
        return None
    try:
        return parse_origin(raw)
    except InvalidReference:
        return None


def complete_refspec(desired: Origin, current: Optional[Origin]) -> Origin:
    """A bare ref inherits the current remote, as ``rpm-ostree rebase REF`` does."""
    if isinstance(desired, OstreeRefspec) and desired.remote is None and isinstance(current, OstreeRefspec) and current.remote:
        return OstreeRefspec(remote=current.remote, ref=desired.ref)
    return desired


def _scope_candidates(image: ImageReference) -> list:
    name = image.registry_name
    if name is None:
        return []
    parts = ("%s/%s" % (name.registry, name.repository)).split("/")
    return ["/".join(parts[:count]) for count in range(len(parts), 0, -1)]


def verifying_policy_present(policy_text: Optional[str], image: ImageReference) -> bool:
    """Whether containers-policy.json demands a signature for ``image`` (the most specific docker scope wins)."""
    if not policy_text:
        return False
    try:
        policy = json.loads(policy_text)
    except ValueError:
        return False
    scopes = (policy.get("transports") or {}).get("docker") or {}
    requirements = None
    for scope in _scope_candidates(image):
        if scope in scopes:
            requirements = scopes[scope]
            break
    if requirements is None:
        requirements = policy.get("default") or []
    return any(isinstance(item, dict) and item.get("type") in VERIFYING_REQUIREMENTS for item in requirements)


def unverified_variant(image: ImageReference) -> ImageReference:
    return ImageReference(sigverify=SIGVERIFY_UNVERIFIED, transport=image.transport, name=image.name)


def plan_rebase(merge: dict, desired: Origin, policy_text: Optional[str] = None, bootstrap_unverified: bool = False) -> dict:
    """Plan from the deployment changes stack on (``merge``) to ``desired``.

    Returns ``{"changed", "target", "step", "before", "after", "message"}``: ``target`` is the origin to rebase to,
    ``step`` is ``rebase``, ``bootstrap`` (the unverified first step of a signed rebase) or ``none``.
    """
    current = current_origin(merge)
    desired = complete_refspec(desired, current)
    before = {"origin": merge.get("origin"), "digest": merge.get("container_image_reference_digest")}
    if current is not None and same_origin(current, desired):
        return {"changed": False, "target": desired, "step": "none", "before": before, "after": before, "message": ""}
    target, step, message = desired, "rebase", ""
    if (
        isinstance(desired, ImageReference)
        and desired.sigverify == SIGVERIFY_SIGNED
        and not verifying_policy_present(policy_text, desired)
    ):
        first = unverified_variant(desired)
        if not bootstrap_unverified:
            message = (
                "no signature policy for %s exists yet in /etc/containers/policy.json; if the image ships its own policy, "
                "set bootstrap_unverified=true to rebase unverified first, reboot, and run again" % desired.normalized_name
            )
        elif current is not None and same_origin(current, first):
            message = (
                "the host already follows %s unverified, but /etc/containers/policy.json still has no signature policy for it; "
                "boot that deployment first (or the image ships no policy)" % desired.normalized_name
            )
            step = "blocked"
        else:
            target, step = first, "bootstrap"
            message = "first of two steps: rebase unverified to get the image's signature policy; reboot, then run again to switch to the signed reference"
    after = {"origin": target.canonical, "digest": None}
    return {"changed": step != "blocked", "target": target, "step": step, "before": before, "after": after, "message": message}


def rpm_ostree_argv(target: Origin, bypass_driver: bool = False, reboot: bool = False, install: Optional[list] = None) -> list:
    """``rpm-ostree rebase``; packages in ``install`` are layered in the same transaction (``--install=PKG``)."""
    argv = ["rebase"]
    argv += ["--bypass-driver"] if bypass_driver else []
    argv += ["--reboot"] if reboot else []
    argv += ["--install=" + name for name in install or []]
    if target.canonical.startswith("-"):  # parsed references never do; GOption has no reliable "--" for rebase
        raise InvalidReference("%r would be read as an option" % target.canonical)
    return argv + [target.canonical]


def bootc_argv(target: Origin) -> list:
    if not isinstance(target, ImageReference):
        raise InvalidReference(
            "bootc follows container images only; %s is an ostree ref (use the rpm-ostree backend)" % target.canonical
        )
    if target.sigverify == "remote":
        raise InvalidReference(
            "bootc switch cannot verify with an ostree remote's keys; use signature=signed or the rpm-ostree backend"
        )
    argv = ["switch", "--transport", target.transport]
    argv += ["--enforce-container-sigpolicy"] if target.sigverify == SIGVERIFY_SIGNED else []
    # The image is a positional argument: after "--" nothing in it can be read as an option (an oci: path "-h").
    return argv + ["--", target.name]


def bootc_current(status: dict) -> Optional[ImageReference]:
    """The image bootc's next boot follows (staged, else booted), as a parsed reference."""
    entry = status.get("staged") or status.get("booted") or {}
    image = (entry.get("image") or {}).get("image")
    if not image or image.get("kind") != "container":
        return None
    return parse_origin(image["canonical"])
