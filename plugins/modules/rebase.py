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
requirements:
  - rpm-ostree 2022.16 or later to follow container images (rebase without --experimental), or bootc 0.1.13 or later
    with O(backend=bootc) (status --format=json, switch --enforce-container-sigpolicy); rpm-ostree 2021.3 or later with
    O(bypass_driver).
  - skopeo 1.5.1 or later on the host with O(follow=digest) (inspect --no-tags).
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
  follow:
    description:
      - V(tag) follows O(image) as written (a tag moves when C(rpm-ostree upgrade) finds a newer image under it).
      - V(digest) is image mode's way. The tag of O(image) (C(registry/name:tag), a registry image) is resolved in the
        registry at each run (C(skopeo inspect) on the host, with the credentials rpm-ostree uses), and the host
        follows C(registry/name@sha256:...), pinned, so nothing moves it but the next run after a new build.
      - An image built by M(immutable.hosts.image_publish) names the packages it provides (its label
        C(io.immutable-hosts.packages)); their requests on the host are dropped in the same transaction as the switch
        (C(--uninstall=PKG)), since the image now carries them (see RV(removed)).
    type: str
    choices: [tag, digest]
    default: tag
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
removed:
  description:
    - Requests dropped together with the switch because the followed image provides those packages (O(follow=digest)
      and the image's C(io.immutable-hosts.packages) label; predicted in check mode).
  returned: success
  type: list
  elements: str
  sample: [htop, tmux]
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


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._rebase import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
