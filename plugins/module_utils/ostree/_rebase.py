# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rebasing: which origin the host should follow, compared by meaning with the one it follows now.

A rebase to the origin the pending deployment already has would fail with "Old and new refs are equal", and a
different spelling of the same image is no change at all, so the plan compares parsed references.

Signed images whose verification policy ships inside the image itself (Universal Blue and others) need two steps:
rebase unverified, boot it (the image brings its ``/etc/containers/policy.json`` and keys), then rebase signed.
:func:`plan_rebase` takes the first step when ``bootstrap_unverified`` is set and no verifying policy exists yet.

The planning functions are pure; :data:`UNIT` is the module immutable.hosts.rebase, with rpm-ostree or bootc.
Standard library only, Python 3.9+.
"""

from __future__ import annotations

import json
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _reader as reader
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _registry as registry
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._bootc import reboot_state as bootc_reboot_state
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._imageref import (
    SIGVERIFY_SIGNED,
    SIGVERIFY_UNVERIFIED,
    TRANSPORTS,
    ImageReference,
    InvalidReference,
    Origin,
    OstreeRefspec,
    image_from_options,
    parse_origin,
    parse_refspec,
    same_origin,
)
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._packages import validate_names, without_provided

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


def default_accepts_anything(policy_text: Optional[str]) -> bool:
    """Whether the policy's global default is a lone insecureAcceptAnything (Fedora's and Debian's stock policy), under
    which ostree-ext, and so rpm-ostree and bootc, refuse every signed image, whatever its scope says."""
    try:
        default = (json.loads(policy_text or "") or {}).get("default")
    except (ValueError, AttributeError):
        return False
    return isinstance(default, list) and len(default) == 1 and default[0] == {"type": "insecureAcceptAnything"}


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
                "no signature policy for %s exists yet in /etc/containers/policy.json; install the publisher's key with "
                "immutable.hosts.image_policy, or, if the image ships its own policy, set bootstrap_unverified=true to "
                "rebase unverified first, reboot, and run again" % desired.normalized_name
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
    elif (
        isinstance(desired, ImageReference)
        and desired.sigverify == SIGVERIFY_SIGNED
        and policy_text is not None
        and default_accepts_anything(policy_text)
    ):
        message = (
            "/etc/containers/policy.json verifies %s, but its default is insecureAcceptAnything alone, and rpm-ostree "
            "and bootc refuse every signed image under such a policy; set the default to reject "
            "(immutable.hosts.image_policy with type=reject and no scope) and give the transports other tools pull "
            "from their own default" % desired.normalized_name
        )
    after = {"origin": target.canonical, "digest": None}
    return {"changed": step != "blocked", "target": target, "step": step, "before": before, "after": after, "message": message}


def rpm_ostree_argv(
    target: Origin,
    bypass_driver: bool = False,
    reboot: bool = False,
    install: Optional[list] = None,
    uninstall: Optional[list] = None,
) -> list:
    """``rpm-ostree rebase``; packages in ``install`` are layered in the same transaction (``--install=PKG``), and
    requests in ``uninstall`` dropped (``--uninstall=PKG``)."""
    argv = ["rebase"]
    argv += ["--bypass-driver"] if bypass_driver else []
    argv += ["--reboot"] if reboot else []
    argv += ["--install=" + name for name in install or []]
    argv += ["--uninstall=" + name for name in uninstall or []]
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


# --- the unit ----------------------------------------------------------------------------------------------------------

POLICY_JSON = "/etc/containers/policy.json"


class RebaseUnit:
    """immutable.hosts.rebase: the origin the next boot follows, with rpm-ostree (``rebase``, packages layered in the
    same transaction) or bootc (``switch``)."""

    ARGUMENT_SPEC = dict(
        ref=dict(type="str"),
        image=dict(type="str"),
        signature=dict(type="str", choices=["signed", "unverified", "remote"], default="signed"),
        signature_remote=dict(type="str"),
        transport=dict(type="str", choices=list(TRANSPORTS), default="registry"),
        bootstrap_unverified=dict(type="bool", default=False),
        backend=dict(type="str", choices=["auto", "rpm-ostree", "bootc"], default="auto"),
        install=dict(type="list", elements="str", default=[]),
        follow=dict(type="str", choices=["tag", "digest"], default="tag"),
        **reader.COMMON_ARGUMENT_SPEC,
    )
    MODULE_OPTIONS = dict(
        mutually_exclusive=[("ref", "image")],
        required_one_of=[("ref", "image")],
        required_if=[("signature", "remote", ("signature_remote",))],
    )

    def desired(self, params: dict, host) -> dict:
        reader.check_common(params)
        if params["ref"] and (params["signature"] != "signed" or params["signature_remote"] or params["transport"] != "registry"):
            raise reader.OstreeHostError(
                "signature, signature_remote and transport apply to images; an ostree ref is verified by its remote's GPG settings"
            )
        validate_names(params["install"], "install")
        if params["follow"] == "digest":
            if not params["image"] or params["transport"] != "registry" or "://" in params["image"]:
                raise reader.OstreeHostError(
                    "follow=digest resolves an image's tag in its registry: give image as registry/name:tag (transport registry)"
                )
            if registry.parse_registry_name(params["image"]).digest:
                raise reader.OstreeHostError(
                    "follow=digest follows a tag by the digest it has at each run; %s is pinned already (follow=tag "
                    "follows it as it is)" % params["image"]
                )
        target = desired_origin(
            ref=params["ref"],
            image=params["image"],
            transport=params["transport"],
            signature=params["signature"],
            signature_remote=params["signature_remote"],
        )
        if params["image"] and target.sigverify == SIGVERIFY_UNVERIFIED:
            host.warn(
                "%s is followed unverified: nothing checks that the image is the one its publisher signed; prefer "
                "signature=signed, or bootstrap_unverified for images that ship their own policy" % target.canonical
            )
        return dict(params, target=target)

    def resolved(self, host, desired: dict) -> Optional[dict]:
        """With follow=digest, what the registry holds for the tag now (read once per run), else None."""
        if desired["follow"] != "digest":
            return None
        return registry.inspect_tag(host, desired["image"])

    def target(self, current: dict, desired: dict) -> Origin:
        found = current.get("registry")
        if found is None:
            return desired["target"]
        return image_from_options(
            found["pinned"], transport="registry", signature=desired["signature"], remote=desired["signature_remote"]
        )

    def read(self, host, desired: dict) -> dict:
        if not reader.is_ostree_booted(host):
            raise reader.OstreeHostError(
                "this host was not booted through OSTree (no /run/ostree-booted); there is nothing to rebase"
            )
        has_rpm_ostree, has_bootc = host.which("rpm-ostree"), host.which("bootc")
        backend = desired["backend"]
        if backend == "auto":
            backend = "rpm-ostree" if has_rpm_ostree else "bootc"
        if (backend == "rpm-ostree" and not has_rpm_ostree) or (backend == "bootc" and not has_bootc):
            raise reader.OstreeHostError("backend %s is not installed on this host" % backend)
        if backend == "bootc":
            if desired["install"]:
                raise reader.OstreeHostError(
                    "install layers packages with rpm-ostree; bootc switch cannot (use backend=rpm-ostree)"
                )
            bootc_argv(desired["target"])  # refuses what bootc cannot follow before anything runs
            status = reader.bootc_status(host)
            if not status["is_bootc"]:
                raise reader.OstreeHostError("bootc reports no booted deployment; this host is not managed by bootc")
            if status["booted"] and status["booted"]["incompatible"]:
                raise reader.OstreeHostError(
                    "the booted deployment has rpm-ostree layering (packages or overrides), which bootc cannot manage; "
                    "run 'rpm-ostree reset' and reboot, or use backend=rpm-ostree"
                )
            return {"backend": "bootc", "current": bootc_current(status), "registry": self.resolved(host, desired)}
        return {
            "backend": "rpm-ostree",
            "merge": reader.merge(reader.status(host)),
            "policy": host.read_text(POLICY_JSON),
            "registry": self.resolved(host, desired),
        }

    def plan(self, current: dict, desired: dict) -> Plan:
        target = self.target(current, desired)
        if current["backend"] == "bootc":
            now = current["current"]
            changed = now is None or not same_origin(now, target)
            before = {"origin": now.canonical if now else None}
            after = {"origin": target.canonical} if changed else before
            return Plan(
                changed=changed,
                diff={"before": before, "after": after},
                actions={"argv": bootc_argv(target)},
                result={"origin": after["origin"], "step": "rebase" if changed else "none", "backend": "bootc"},
                reboot_reasons=["origin-changed"],
            )
        merge = current["merge"]
        found = plan_rebase(merge, target, policy_text=current["policy"], bootstrap_unverified=desired["bootstrap_unverified"])
        if found["message"] and found["step"] in ("blocked", "rebase"):
            raise reader.OstreeHostError(found["message"])
        requested = list(merge.get("requested_packages") or [])
        install = [name for name in desired["install"] if name not in requested] if found["changed"] else []
        # An image built from the document provides its packages (its label): their requests go with the switch.
        provided = (current.get("registry") or {}).get("packages") or []
        uninstall = sorted(set(requested) & set(provided)) if found["changed"] else []
        diff = {"before": dict(found["before"]), "after": dict(found["after"])}
        if desired["install"] or uninstall:
            diff["before"]["requested_packages"] = sorted(requested)
            diff["after"]["requested_packages"] = sorted(set(requested + install) - set(uninstall))
        return Plan(
            changed=found["changed"],
            diff=diff,
            actions={"target": found["target"], "install": install, "uninstall": uninstall, "requested": requested},
            result={
                "origin": found["after"]["origin"],
                "step": found["step"],
                "backend": "rpm-ostree",
                "installed": install,
                "removed": uninstall,
                "provided_by_base": {},
            },
            reboot_reasons=["origin-changed"] + (["layering-changed"] if install or uninstall else []),
            warnings=[found["message"]] if found["message"] and found["step"] == "bootstrap" else [],
        )

    def prepare(self, host, plan: Plan, desired: dict) -> None:
        if plan.result["backend"] == "rpm-ostree":
            reader.prepare(host, desired)

    def apply(self, host, plan: Plan, desired: dict) -> dict:
        if plan.result["backend"] == "bootc":
            host.run(["bootc", *plan.actions["argv"]], busy_deadline=host.runner.deadline(desired["wait_timeout"]))
            host.forget(reader.BOOTC_STATUS)
            return {}
        # One transaction: the rebase with --install for each package.  When the new base already provides some of
        # them, rpm-ostree refuses the whole transaction (nothing changed): those are dropped and it is tried again.
        asked = list(plan.actions["install"])

        def attempt(provided: dict) -> list:
            install = [name for name in asked if name not in provided]
            argv = rpm_ostree_argv(
                plan.actions["target"],
                bypass_driver=desired["bypass_driver"],
                install=install,
                uninstall=plan.actions["uninstall"],
            )
            reader.transaction(host, argv, desired, ok_rcs=(0,))
            return install

        install, provided = without_provided(attempt, lambda: asked)
        result = {"installed": install, "provided_by_base": provided}
        if desired["install"] or plan.actions["uninstall"]:
            after = dict(
                plan.diff["after"],
                requested_packages=sorted(set(plan.actions["requested"] + install) - set(plan.actions["uninstall"])),
            )
            result["diff"] = {"before": plan.diff["before"], "after": after}
        return result

    def report(self, host, plan: Plan, _desired: dict) -> dict:
        if plan.result["backend"] == "rpm-ostree":
            return reader.report(host, plan.changed, plan.reboot_reasons)
        status = reader.bootc_status(host)
        reboot = bootc_reboot_state(status)
        if plan.changed and host.check_mode:
            # bootc switch stages a new deployment without a lock, in place of any staged one.
            reasons = [
                r for r in reboot["reboot_reasons"] + reboot["staged_locked_reasons"] if r != ostree.REASON_FINALIZATION_LOCKED
            ]
            reboot = ostree.reboot_verdict(reasons + ["origin-changed"])
        return dict(reboot, deployment=status.get("staged") or status.get("booted"))


UNIT = RebaseUnit()
