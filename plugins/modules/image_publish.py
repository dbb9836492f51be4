#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_publish
short_description: Build an image context with Podman, push the image to a registry and sign it
version_added: 0.3.0
description:
  - Builds the build context that M(immutable.hosts.image_context) wrote in O(context) with C(podman build), pushes
    the image to O(image) and signs it as it pushes (sigstore, the signature attached in the registry as cosign
    attaches it), in one C(skopeo copy) from Podman's storage to the registry; returns the pushed digest.
  - The image records the context it was built from in the label C(io.immutable-hosts.context) (the context's digest,
    as M(immutable.hosts.image_context) returns it). When the registry's image for O(image) carries this context's
    digest and its signature is attached, nothing is built or pushed and the run reports no change; a check reports
    whether a build would happen, with the registry's state before and after as the diff, and builds nothing.
  - Signing is on by default; O(sigstore_private_key) is then required. The passphrase reaches C(skopeo) through a
    pipe, never a file or the command line. The copy uses a C(registries.d) and a policy of its own, so that the
    signature is attached in the registry whatever the host's configuration says, and the copy reads only the image
    this module just built.
  - The base image is pulled by the build under the host's own trust (C(/etc/containers/policy.json)), so a signed
    base is verified where the build runs.
  - Runs where the image is built (C(delegate_to) the build host), as the user whose Podman storage holds the build.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - podman 3.1 or later (build --timestamp), and skopeo 1.9.0 or later with O(sign=true) (copy
    --sign-by-sigstore-private-key), else skopeo 1.5.1 or later (inspect --no-tags, copy --digestfile), where the module
    runs.
options:
  context:
    description:
      - The build context's directory, as M(immutable.hosts.image_context) wrote it (absolute).
    type: path
    required: true
  image:
    description:
      - Where to push, as registry, repository and tag (C(registry.example.com/fleet/silverblue:42)); no digest.
    type: str
    required: true
  sign:
    description:
      - Sign the pushed image with O(sigstore_private_key). Set to V(false) only for a registry whose images nothing
        verifies.
    type: bool
    default: true
  sigstore_private_key:
    description:
      - A sigstore private key (as C(cosign generate-key-pair) or C(skopeo generate-sigstore-key) writes it) on the
        build host. Required when O(sign=true).
    type: path
  sigstore_passphrase:
    description:
      - The private key's passphrase.
    type: str
  authfile:
    description:
      - Registry credentials for the push (C(containers-auth.json) format); by default, Podman's and skopeo's own.
    type: path
  tls_verify:
    description:
      - Verify the registry's TLS certificate (C(/etc/containers/certs.d) holds private CAs).
    type: bool
    default: true
  timestamp:
    description:
      - Seconds since the epoch to give the image's creation time and its files (C(podman build --timestamp)), for
        images whose bytes do not depend on when they were built.
    type: int
notes:
  - The context's own digest decides whether to build; an image rebuilt from the same context is not pushed again.
    To rebuild anyway (a new base image under the same digest cannot happen; new packages in the repositories can),
    change the context, for example a label in M(immutable.hosts.image_context)'s O(immutable.hosts.image_context#module:labels).
seealso:
  - module: immutable.hosts.image_context
    description: Writes the build context this module builds.
  - module: immutable.hosts.rebase
    description: Switches a host to the published image by its digest.
"""

EXAMPLES = r"""
- name: Build, push and sign the silverblue group's image
  immutable.hosts.image_publish:
    context: /var/tmp/image-silverblue
    image: registry.example.com/fleet/silverblue:42
    sigstore_private_key: /etc/immutable-hosts/fleet.key
    sigstore_passphrase: "{{ vault_fleet_key_passphrase }}"
  become: true
  delegate_to: build.example.com
  register: published

- name: The digest hosts switch to
  ansible.builtin.debug:
    msg: "{{ published.reference }}"
"""

RETURN = r"""
image:
  description: The registry, repository and tag pushed to.
  returned: always
  type: str
  sample: registry.example.com/fleet/silverblue:42
digest:
  description: The image's manifest digest in the registry (the one pushed, or the one already there).
  returned: when the image is in the registry after the run (not in a check that would build)
  type: str
  sample: sha256:b9d27c360d88b8048882d5a8e8a47fe7705af0b58c4c100e2c0bf745d9e4f5e1
reference:
  description: The image by digest, as hosts follow it.
  returned: when RV(digest) is
  type: str
  sample: registry.example.com/fleet/silverblue@sha256:b9d27c360d88b8048882d5a8e8a47fe7705af0b58c4c100e2c0bf745d9e4f5e1
context_digest:
  description: The digest of the context built (the label C(io.immutable-hosts.context) of the image).
  returned: always
  type: str
  sample: sha256:7ec2e50a0f4fa720ca63a9d1b00ff02e83e4b73bb8adbbc3f33c9b91d76316f0
signed:
  description: Whether the image is signed (O(sign)).
  returned: always
  type: bool
built:
  description: Whether this run built and pushed the image.
  returned: always
  type: bool
commands:
  description: The commands the module ran (the passphrase is never among them).
  returned: always
  type: list
  elements: list
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.image._publish import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
