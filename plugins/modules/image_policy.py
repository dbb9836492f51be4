#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_policy
short_description: Trust signed container images (a scope of containers-policy.json, its registries.d entry and key)
version_added: 0.3.0
description:
  - Sets the requirements of one scope (a registry, namespace or repository) of one transport in
    C(/etc/containers/policy.json), the file every pull on the host is checked against (rpm-ostree's and bootc's
    for C(ostree-image-signed:) images, Podman's and skopeo's). Every other entry of the file is kept, in its order, and
    the file keeps its indentation.
  - For V(sigstoreSigned) on the C(docker) transport, also writes the C(registries.d) entry that makes
    containers/image read the signatures a registry stores as attachments (C(use-sigstore-attachments)), which
    cosign and C(skopeo --sign-by-sigstore-private-key) write; for V(signedBy), the C(lookaside) where GPG
    signatures are published.
  - Writes the public key under C(/etc/pki/containers/) (or O(key_path)), or into the policy itself
    (O(key_inline=true)).
  - containers/image reads the policy strictly, and one bad field makes every pull fail. The module checks the whole
    resulting policy against the rules of C(containers-policy.json(5)) (known transports and types, the fields each
    type allows, exactly one key, scope syntax, identity rules) and refuses to write one it would reject; it also
    refuses to add to a policy that is already invalid, and a C(registries.d) namespace that another file configures.
  - Writes the key before the policy that names it, each file atomically. The diff shows each file that changes.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - None on the host; containers/image (podman, skopeo, rpm-ostree, bootc) reads the files.
options:
  scope:
    description:
      - The scope in O(transport), for C(docker) a registry host (with a port if not 443), a namespace or a repository
        in the fully expanded form (C(quay.io/fedora), C(docker.io/library/busybox)), optionally with a tag or digest,
        or C(*.example.com).
      - The empty string is the transport's default scope.
      - Omitted, the module sets the policy's global C(default), the requirement of every transport and scope that
        has none of its own (O(transport) is then not used, and O(state=absent) is refused, since the policy needs one).
    type: str
  transport:
    description: The transport the scope belongs to.
    type: str
    default: docker
    choices: [atomic, containers-storage, dir, docker, docker-archive, docker-daemon, oci, oci-archive, ostree, sif, tarball]
  state:
    description:
      - V(present) makes O(type) (with its key) the scope's only requirement.
      - V(absent) removes the scope from the policy (its images then fall under a less specific scope or the default)
        and the C(registries.d) file this module wrote for it. A key file is left in place.
    type: str
    default: present
    choices: [present, absent]
  type:
    description:
      - V(sigstoreSigned) accepts images with a sigstore signature by O(key) (cosign, C(skopeo --sign-by-sigstore-private-key)).
      - V(signedBy) accepts images with a GPG "simple signing" signature by O(key).
      - V(insecureAcceptAnything) accepts any image; V(reject) refuses every image.
    type: str
    default: sigstoreSigned
    choices: [sigstoreSigned, signedBy, insecureAcceptAnything, reject]
  key:
    description:
      - The public key's text, for the signed types; a PEM public key (C(-----BEGIN PUBLIC KEY-----)) for
        V(sigstoreSigned), an ASCII-armored OpenPGP public key for V(signedBy).
      - Written to O(key_path), by default C(/etc/pki/containers/SCOPE.pub) (C(.gpg) for V(signedBy)), mode 0644.
    type: str
  key_path:
    description:
      - Where the key file is. With O(key), where to write it; without, a key file already on the host (for example
        one the OS ships), named in the policy as it is.
    type: path
  key_inline:
    description: Put O(key) into the policy (C(keyData), base64) instead of a file.
    type: bool
    default: false
  signed_identity:
    description:
      - What identity the signature must claim (C(signedIdentity)).
      - Default for V(sigstoreSigned) is V(matchRepository), since cosign's signatures name the repository only; for
        V(signedBy), none (the policy's own default, C(matchRepoDigestOrExact)).
    type: dict
    suboptions:
      type:
        description: The identity rule.
        type: str
        required: true
        choices: [matchExact, matchRepoDigestOrExact, matchRepository, exactReference, exactRepository, remapIdentity]
      docker_reference:
        description: For V(exactReference), the reference the signature names.
        type: str
      docker_repository:
        description: For V(exactRepository), the repository the signature names.
        type: str
      prefix:
        description: For V(remapIdentity), the prefix of the image's name that is replaced.
        type: str
      signed_prefix:
        description: For V(remapIdentity), what it is replaced by before matching.
        type: str
  use_sigstore_attachments:
    description:
      - Whether containers/image reads sigstore signatures stored in the registry next to the image (C(docker)
        transport only). Default V(true) for V(sigstoreSigned), else unmanaged.
    type: bool
  lookaside:
    description: For V(signedBy), the URL signatures are published under (C(registries.d) C(lookaside)).
    type: str
  registries_d_path:
    description:
      - The C(registries.d) file for this scope. Default C(/etc/containers/registries.d/SCOPE.yaml); a file there
        that this module did not write is refused rather than overwritten.
    type: path
  policy_path:
    description: The policy file.
    type: path
    default: /etc/containers/policy.json
notes:
  - Requires C(become=true).
  - Fedora's and Debian's stock policy has a global default of C(insecureAcceptAnything) alone, and rpm-ostree and
    bootc (ostree-ext) refuse C(ostree-image-signed:) images while it does, whatever the scopes say. Set the global
    default to V(reject) (O(scope) omitted) and give the transports the hosts pull from their own default (for
    example O(scope="") with V(insecureAcceptAnything) for C(docker), so Podman's pulls keep working), then the
    image's registry or namespace V(sigstoreSigned).
  - Nothing is pulled or verified by this module; the next pull is.
seealso:
  - module: immutable.hosts.registry_auth
  - module: immutable.hosts.rebase
"""

EXAMPLES = r"""
- name: Trust Fedora's images on quay.io, signed with the project's cosign key
  immutable.hosts.image_policy:
    scope: quay.io/fedora
    key: "{{ lookup('ansible.builtin.file', 'fedora.pub') }}"
  become: true

- name: What rpm-ostree needs for signed images - a default that is not "accept anything"
  immutable.hosts.image_policy:
    type: reject
  become: true

- name: Other registries stay as they were for Podman
  immutable.hosts.image_policy:
    scope: ""
    type: insecureAcceptAnything
  become: true

- name: The same key, inline in the policy
  immutable.hosts.image_policy:
    scope: quay.io/fedora-asahi-remix-atomic-desktops
    key: "{{ lookup('ansible.builtin.file', 'asahi.pub') }}"
    key_inline: true
  become: true

- name: Refuse one registry
  immutable.hosts.image_policy:
    scope: registry.example.com
    type: reject
  become: true

- name: Stop trusting a namespace
  immutable.hosts.image_policy:
    scope: quay.io/fedora
    state: absent
  become: true
"""

RETURN = r"""
transport:
  description: The transport of the scope.
  returned: success
  type: str
  sample: docker
scope:
  description: The scope (null for the global default).
  returned: success
  type: str
  sample: quay.io/fedora
requirements:
  description: The scope's requirements after the run, as in the policy; null for O(state=absent).
  returned: success
  type: list
  elements: dict
  sample: [{type: sigstoreSigned, keyPath: /etc/pki/containers/quay.io-fedora.pub, signedIdentity: {type: matchRepository}}]
previous:
  description: The scope's requirements before the run (null when the policy had no such scope).
  returned: success
  type: list
  elements: dict
key_path:
  description: The key file written (null when the key is inline or none is written).
  returned: success
  type: str
  sample: /etc/pki/containers/quay.io-fedora.pub
registries_d:
  description: The registries.d file of the scope (null when none is managed).
  returned: success
  type: str
  sample: /etc/containers/registries.d/quay.io-fedora.yaml
commands:
  description: The commands run, as argument lists (none).
  returned: always
  type: list
  elements: list
  sample: []
diff:
  description: Before and after of each file that changes (the policy, the key, the registries.d file).
  returned: success
  type: list
  elements: dict
"""


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.containers._policy import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
