#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rebase
short_description: Make an OSTree host follow an ostree ref or a bootable container image
version_added: 0.1.0
description:
  - Rebases the deployment that boots next onto an ostree ref (C(remote:ref)) or an OCI image, with
    C(rpm-ostree rebase) or, on a bootc host without rpm-ostree, C(bootc switch).
  - Compares I(parsed) references against the deployment new changes stack on, never raw strings, so
    C(ostree-unverified-image:docker://X), C(ostree-unverified-registry:X) and C(ostree-unverified-image:registry:X)
    are the same image, C(docker.io/library/fedora:latest) is C(fedora), and a converged host sees no mutating
    command (never "Old and new refs are equal"). Layered packages stay layered across the rebase.
  - Image signatures are checked by default (O(signature=signed)). Images whose signature policy ships inside the
    image (Universal Blue and others) need two steps; see O(bootstrap_unverified).
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.rpm_ostree
author:
  - immutable.hosts contributors (@immutable-hosts)
options:
  ref:
    description:
      - An ostree refspec such as C(fedora:fedora/42/x86_64/silverblue). A bare ref keeps the current remote.
      - Mutually exclusive with O(image).
    type: str
  image:
    description:
      - A container image such as C(quay.io/fedora/fedora-silverblue:42), or a full ostree image reference such
        as C(ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42).
      - A full reference must agree with O(signature), O(transport) and O(signature_remote); one that contradicts
        them (C(ostree-unverified-registry:...) with the default O(signature=signed)) fails rather than rebasing
        with a weaker check than asked for.
      - Mutually exclusive with O(ref).
    type: str
  signature:
    description:
      - How the image is verified. V(signed) follows C(/etc/containers/policy.json) (C(ostree-image-signed)).
        V(remote) verifies the embedded ostree commit with the keys of ostree remote O(signature_remote).
        V(unverified) checks nothing and is only used when asked for explicitly (the module warns).
    type: str
    choices: [signed, unverified, remote]
    default: signed
  signature_remote:
    description: The ostree remote whose keys verify the image, with O(signature=remote).
    type: str
  transport:
    description: Where the image comes from.
    type: str
    choices: [registry, oci, oci-archive, containers-storage, dir, docker-archive]
    default: registry
  bootstrap_unverified:
    description:
      - For O(signature=signed) images whose verification policy is not yet on the host (it comes with the image).
        When no policy in C(/etc/containers/policy.json) demands a signature for the image, rebase to the
        I(unverified) image first and report RV(step=bootstrap); after the reboot, run again to switch to the signed
        reference (a second reboot). This is Universal Blue's documented two-step rebase.
      - Without it, such a run fails and says so, instead of rebasing unverified.
    type: bool
    default: false
  install:
    description:
      - Packages to layer in the same rpm-ostree transaction as the rebase (C(rpm-ostree rebase --install=PKG)), so
        rebasing and layering cost one transaction and one new deployment instead of two.
      - Used only when a rebase happens; names already requested on the deployment the rebase stacks on are left out.
        A name the new base already provides is dropped and the rebase is tried again without it (see
        RV(provided_by_base)). Keeping the layered set converged is M(immutable.hosts.rpm_ostree_packages)'s job.
      - Package names only, not local RPM files. Not available with the bootc backend.
    type: list
    elements: str
    default: []
  backend:
    description:
      - V(auto) uses rpm-ostree when present, else bootc. V(bootc) requires an image and refuses a deployment bootc
        cannot manage (one with rpm-ostree layering).
    type: str
    choices: [auto, rpm-ostree, bootc]
    default: auto
notes:
  - Requires C(become=true). The new deployment boots at the next reboot; RV(reboot_required) says so.
seealso:
  - module: immutable.hosts.ostree_facts
  - module: immutable.hosts.rpm_ostree_packages
"""

EXAMPLES = r"""
- name: Follow Fedora Silverblue 42 from the ostree remote
  immutable.hosts.rebase:
    ref: fedora:fedora/42/x86_64/silverblue
  become: true

- name: Follow the signed Silverblue image
  immutable.hosts.rebase:
    image: quay.io/fedora/fedora-silverblue:42
  become: true

- name: Universal Blue - unverified first, then signed once the image's policy is on the host
  immutable.hosts.rebase:
    image: ghcr.io/ublue-os/silverblue-main:42
    bootstrap_unverified: true
  become: true
  register: rebased

- name: Reboot into it (and run the play again for the signed step)
  ansible.builtin.reboot:
  when: rebased.reboot_required
  become: true
"""

RETURN = r"""
origin:
  description: The origin the next boot follows after the run (predicted in check mode).
  returned: success
  type: str
  sample: ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42
step:
  description: V(none) (already there), V(rebase), or V(bootstrap) (the unverified first step of a signed rebase).
  returned: success
  type: str
  sample: rebase
backend:
  description: The tool that did the work, V(rpm-ostree) or V(bootc).
  returned: success
  type: str
  sample: rpm-ostree
reboot_required:
  description: Whether the next boot differs from the running system.
  returned: success
  type: bool
  sample: true
reboot_reasons:
  description: Why a reboot is needed, for example V(staged-update), V(origin-changed).
  returned: success
  type: list
  elements: str
  sample: [staged-update, origin-changed]
staged_locked:
  description:
    - Whether a staged deployment waits with its finalization locked; a plain reboot would discard it, so it does
      not count in RV(reboot_required) (see C(ansible_facts.ostree.staged_locked)).
  returned: success
  type: bool
  sample: false
staged_locked_reasons:
  description: What the locked staged deployment would change.
  returned: success
  type: list
  elements: str
  sample: []
deployment:
  description: The deployment new changes stack on (the pending one after a change).
  returned: success
  type: dict
installed:
  description: The packages of O(install) requested together with the rebase (predicted in check mode).
  returned: success
  type: list
  elements: str
  sample: [htop, zsh]
provided_by_base:
  description: Packages of O(install) the new base already provides, so they were not requested, with the providing NEVRA.
  returned: success
  type: dict
  sample: {zsh: zsh-5.9-15.fc42.x86_64}
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json], [/usr/bin/rpm-ostree, rebase, "fedora:fedora/42/x86_64/silverblue"]]
diff:
  description:
    - The origin (and image digest) of the next boot before and after; with O(install), also the requested packages.
  returned: success
  type: dict
  sample: {before: {origin: "fedora:fedora/41/x86_64/silverblue"}, after: {origin: "fedora:fedora/42/x86_64/silverblue"}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import bootc, host, layering, ostree, rebase
from ansible_collections.immutable.hosts.plugins.module_utils.imageref import same_origin
from ansible_collections.immutable.hosts.plugins.module_utils.ostree_host import COMMON_ARGUMENT_SPEC, OstreeHostError, run_module
from ansible_collections.immutable.hosts.plugins.module_utils.runner import CommandFailed

POLICY_JSON = "etc/containers/policy.json"


def desired(params):
    return rebase.desired_origin(
        ref=params["ref"],
        image=params["image"],
        transport=params["transport"],
        signature=params["signature"],
        signature_remote=params["signature_remote"],
    )


def choose_backend(rpm_host, wanted):
    if not host.is_ostree_booted(rpm_host.root):
        raise OstreeHostError("this host was not booted through OSTree (no /run/ostree-booted); there is nothing to rebase")
    has_rpm_ostree, has_bootc = rpm_host.runner.which("rpm-ostree"), rpm_host.runner.which("bootc")
    if wanted == "auto":
        wanted = "rpm-ostree" if has_rpm_ostree else "bootc"
    if (wanted == "rpm-ostree" and not has_rpm_ostree) or (wanted == "bootc" and not has_bootc):
        raise OstreeHostError("backend %s is not installed on this host" % wanted)
    return wanted


def converge_bootc(rpm_host, target_spec):
    module = rpm_host.module
    argv = rebase.bootc_argv(target_spec)  # refuses what bootc cannot follow before anything runs
    status = bootc.parse_status(rpm_host.runner.run(["bootc", "status", "--format=json"]).stdout)
    booted = status.get("booted")
    if not status["is_bootc"]:
        raise OstreeHostError("bootc reports no booted deployment; this host is not managed by bootc")
    if booted and booted["incompatible"]:
        raise OstreeHostError(
            "the booted deployment has rpm-ostree layering (packages or overrides), which bootc cannot manage; "
            "run 'rpm-ostree reset' and reboot, or use backend=rpm-ostree"
        )
    current = rebase.bootc_current(status)
    before = {"origin": current.canonical if current else None}
    changed = current is None or not same_origin(current, target_spec)
    after = {"origin": target_spec.canonical}
    if changed and not module.check_mode:
        rpm_host.runner.run(["bootc", *argv], busy_deadline=rpm_host.deadline)
        status = bootc.parse_status(rpm_host.runner.run(["bootc", "status", "--format=json"]).stdout)
    reboot = bootc.reboot_state(status)
    if changed and module.check_mode:
        # bootc switch stages a new deployment without a lock, in place of any staged one.
        reasons = [
            r for r in reboot["reboot_reasons"] + reboot["staged_locked_reasons"] if r != ostree.REASON_FINALIZATION_LOCKED
        ]
        reboot = ostree.reboot_verdict(reasons + ["origin-changed"])
    module.exit_json(
        changed=changed,
        diff={"before": before, "after": after if changed else before},
        commands=rpm_host.runner.commands,
        origin=after["origin"] if changed else before["origin"],
        step="rebase" if changed else "none",
        backend="bootc",
        deployment=status.get("staged") or status.get("booted"),
        **reboot,
    )


def converge(rpm_host):
    module = rpm_host.module
    params = module.params
    target_spec = desired(params)
    if params["image"] and target_spec.sigverify == "unverified":
        module.warn(
            "%s is followed unverified: nothing checks that the image is the one its publisher signed; prefer "
            "signature=signed, or bootstrap_unverified for images that ship their own policy" % target_spec.canonical
        )
    backend = choose_backend(rpm_host, params["backend"])
    if backend == "bootc" and params["install"]:
        raise OstreeHostError("install layers packages with rpm-ostree; bootc switch cannot (use backend=rpm-ostree)")
    if backend == "bootc":
        converge_bootc(rpm_host, target_spec)
        return
    rpm_host.load()
    merge = rpm_host.merge()
    policy = host.read_text(host.host_path(rpm_host.root, POLICY_JSON))
    plan = rebase.plan_rebase(merge, target_spec, policy_text=policy, bootstrap_unverified=params["bootstrap_unverified"])
    if plan["message"] and plan["step"] in ("blocked", "rebase"):
        rpm_host.fail(plan["message"])
    requested = list(merge.get("requested_packages") or [])
    install = [name for name in params["install"] if name not in requested] if plan["changed"] else []
    provided = {}
    if plan["changed"]:
        rpm_host.wait_idle()
        rpm_host.refuse_driver()
        if not module.check_mode:
            install, provided = rebase_with_packages(rpm_host, plan["target"], install, params["bypass_driver"])
    if plan["message"] and plan["step"] == "bootstrap":
        module.warn(plan["message"])
    diff = {"before": dict(plan["before"]), "after": dict(plan["after"])}
    if params["install"]:
        diff["before"]["requested_packages"] = sorted(requested)
        diff["after"]["requested_packages"] = sorted(requested + install)
    rpm_host.exit(
        plan["changed"],
        diff,
        predicted_reasons=["origin-changed"] + (["layering-changed"] if install else []),
        origin=plan["after"]["origin"],
        step=plan["step"],
        backend="rpm-ostree",
        installed=install,
        provided_by_base=provided,
    )


def rebase_with_packages(rpm_host, target, install, bypass_driver):
    """One transaction: the rebase with ``--install`` for each package.  When the new base already provides some of
    them, rpm-ostree refuses the whole transaction (nothing changed); drop those and try once more."""
    provided = {}
    while True:
        argv = rebase.rpm_ostree_argv(target, bypass_driver=bypass_driver, install=install)
        try:
            rpm_host.run(argv, ok_rcs=(0,))
            return install, provided
        except CommandFailed as exc:
            refused = layering.provided_by_base(exc.result.stderr)
            if not refused or set(refused) - set(install):
                raise
            provided.update(refused)
            install = [name for name in install if name not in refused]


def main():
    argument_spec = dict(
        ref=dict(type="str"),
        image=dict(type="str"),
        signature=dict(type="str", choices=["signed", "unverified", "remote"], default="signed"),
        signature_remote=dict(type="str"),
        transport=dict(
            type="str",
            choices=["registry", "oci", "oci-archive", "containers-storage", "dir", "docker-archive"],
            default="registry",
        ),
        bootstrap_unverified=dict(type="bool", default=False),
        backend=dict(type="str", choices=["auto", "rpm-ostree", "bootc"], default="auto"),
        install=dict(type="list", elements="str", default=[]),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("ref", "image")],
        required_one_of=[("ref", "image")],
        required_if=[("signature", "remote", ("signature_remote",))],
    )
    if module.params["ref"] and (
        module.params["signature"] != "signed" or module.params["signature_remote"] or module.params["transport"] != "registry"
    ):
        module.fail_json(
            msg="signature, signature_remote and transport apply to images; an ostree ref is verified by its remote's GPG settings"
        )
    try:
        layering.validate_names(module.params["install"], "install")
    except layering.InvalidPackage as exc:
        module.fail_json(msg=str(exc))
    run_module(module, converge)


if __name__ == "__main__":
    main()
