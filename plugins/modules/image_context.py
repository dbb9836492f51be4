#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_context
short_description: Compile a host's document into the build context of a bootable container image
version_added: 0.3.0
description:
  - Takes the same document as M(immutable.hosts.host_state) (its options C(os), C(users), C(flatpak), C(secrets) and
    C(quadlets)) and writes, in O(path), a C(Containerfile) and the files the image carries under C(tree/), so that
    one inventory drives both a running host and the image hosts follow.
  - The image is built C(FROM) the document's C(os.rebase.image) or O(base_image), which must be pinned by digest.
    Layered packages are installed, and C(os.packages.override_remove) removed, by the image's package manager
    (O(package_manager)); package repositories and their keys go to C(/etc/yum.repos.d) and C(/etc/pki/rpm-gpg). A
    COPR project goes where C(dnf copr enable) puts it, as the hub serves it for the image's chroot (the Fedora release
    of the base image's C(org.opencontainers.image.version) label, read with C(skopeo inspect) where the module runs,
    unless the project gives C(copr_chroot)).
  - Kernel arguments to have go to bootc's C(/usr/lib/bootc/kargs.d/50-immutable-hosts.toml).
  - System Quadlet units go to C(/usr/share/containers/systemd); the images of C(.container) and C(.image) units
    become logically bound images (a link in C(/usr/lib/bootc/bound-images.d), and the unit reads them from bootc's
    store through C(GlobalArgs=--storage-opt=additionalimagestore=/usr/lib/bootc/storage)).
  - A user's Quadlet units go to C(/etc/containers/systemd/users/UID), where Podman's generator finds them for that
    user, when O(user_ids) gives the user's UID; their images are the user's to pull (a bound image is bootc's, root's).
  - The trust (C(os.trust)) is planned as M(immutable.hosts.image_policy) plans it on a host; the image's
    C(/etc/containers/policy.json) holds the document's entries over the policy containers-common ships (entries a
    base image adds of its own are not kept), with the keys it names (given by C(key)) and the scopes'
    C(registries.d) files. An entry whose key is a file on the host (C(key_path) alone) stays at runtime.
  - The update policy (C(os.update_policy)) is planned as M(immutable.hosts.update_policy) plans it on a host with no
    settings of its own, into C(/etc/rpm-ostreed.conf), the update timer enabled or disabled in the build
    (C(bootc-fetch-apply-updates.timer) when C(os.rebase.backend=bootc)), the window's and the service's drop-ins.
    The update gate (C(skip_metered), C(skip_user_sessions)) is a program under C(/usr/local), which is C(/var) on an
    image-based host and no image updates, so those conditions stay at runtime.
  - System Flatpak remotes become C(.flatpakrepo) files in C(/etc/flatpak/remotes.d), which Flatpak adds itself; a
    remote given by C(flatpakrepo_url) is read once, from where this module runs. System apps become Flatpak's
    preinstall files (C(/usr/share/flatpak/preinstall.d), Flatpak 1.17 and later) with O(flatpak_preinstall=true),
    else a service that installs them at first boot (C(immutable-hosts-flatpak-install.service), enabled in the image).
    System overrides become C(tmpfiles.d) lines that write each override file under C(/var/lib/flatpak/overrides) at
    every boot, since C(/var) is the host's and not the image's.
  - What an image cannot carry stays at runtime, and RV(runtime) names each such resource with the reason. Secrets and
    credentials never go into an image; users, a user's Flatpak installation and the Quadlet units of a user whose
    UID is not in O(user_ids) are the host's; removals (packages, kernel arguments, remotes, apps) are changes to a
    host; local RPM files are the controller's; the initramfs is regenerated on the host.
  - The context is reproducible. Every step is in exec form (argv, no shell), files are sorted and carry no date, so
    the same document gives the same files and RV(context_digest). A second run changes nothing; a check shows the
    diff of every file it would write or remove. O(path) must be new, empty, or a context this module wrote (it
    holds C(.immutable-hosts-context)); files that the document no longer produces are removed.
  - Runs where the image is built (C(delegate_to) the build host); it builds nothing itself.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.host_document
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - On the build host, skopeo 1.5.1 or later (inspect --no-tags) when a COPR project gives no copr_chroot, and podman
    4.6 or later's Quadlet generator to validate the units (optional; users' units in /etc/containers/systemd/users need
    4.6).
  - In the base image, bootc 0.1.14 or later (kargs.d, logically bound images, bootc container lint), podman 4.8 or
    later for bound images (GlobalArgs=), and flatpak 1.17 or later with O(flatpak_preinstall=true).
options:
  path:
    description:
      - The build context's directory, absolute; created when missing.
    type: path
    required: true
  base_image:
    description:
      - The image to build from, pinned by digest (C(quay.io/fedora/fedora-silverblue@sha256:...)); by default the
        document's C(os.rebase.image), which must then be pinned by digest.
    type: str
  package_manager:
    description:
      - How the build installs and removes packages in the image.
    type: str
    choices: [dnf, rpm-ostree]
    default: dnf
  flatpak_preinstall:
    description:
      - The image's Flatpak has C(flatpak preinstall) (1.17 and later), so system apps become preinstall files instead of
        a first-boot service.
    type: bool
    default: false
  flatpak_arch:
    description:
      - The Flatpak architecture of the image's apps, for refs that do not name one; by default the machine's where
        the module runs.
    type: str
  labels:
    description:
      - Labels of the image (C(LABEL) in the Containerfile), for example which inventory, host or group and commit it
        comes from.
    type: dict
    default: {}
  lint:
    description:
      - End the build with C(bootc container lint).
    type: bool
    default: true
  user_ids:
    description:
      - The UIDs of the document's users on the hosts that follow the image (C(core) to C(1000)), so their Quadlet units
        can be carried in C(/etc/containers/systemd/users/UID). A user not named here keeps its units at runtime.
    type: dict
    default: {}
notes:
  - Nothing in the document is run or installed where the module runs; only a C(.flatpakrepo) URL is read.
seealso:
  - module: immutable.hosts.host_state
    description: Converges the same document on a running host.
"""

EXAMPLES = r"""
- name: The build context of the silverblue group's image
  immutable.hosts.image_context:
    path: /var/tmp/image-silverblue
    base_image: quay.io/fedora/fedora-silverblue@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    os:
      packages:
        name: [htop, tmux]
      kargs:
        - args: [preempt=full]
    flatpak:
      - remotes:
          - name: flathub
            flatpakrepo_url: https://dl.flathub.org/repo/flathub.flatpakrepo
        apps:
          - name: [org.mozilla.firefox]
            remote: flathub
    quadlets:
      - name: web
        container:
          image: quay.io/example/web:1
        enabled: true
    labels:
      io.immutable-hosts.source: group silverblue
  delegate_to: localhost
  register: context

- name: What stays at runtime
  ansible.builtin.debug:
    msg: "{{ context.runtime }}"
"""

RETURN = r"""
path:
  description: The build context's directory.
  returned: always
  type: str
base_image:
  description: The image the Containerfile builds from.
  returned: always
  type: str
  sample: quay.io/fedora/fedora-silverblue@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
containerfile:
  description: The Containerfile's text.
  returned: always
  type: str
files:
  description: The context's files, relative to O(path) (the Containerfile and the image's files under C(tree/)).
  returned: always
  type: list
  elements: str
  sample: [Containerfile, tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml]
context_digest:
  description: One SHA-256 of every file's name, mode and bytes; the same document gives the same digest.
  returned: always
  type: str
  sample: sha256:7ec2e50a0f4fa720ca63a9d1b00ff02e83e4b73bb8adbbc3f33c9b91d76316f0
runtime:
  description: The resources of the document that the image does not carry, converged on the host instead.
  returned: always
  type: list
  elements: dict
  contains:
    resource:
      description: The resource, as the drift report names it.
      type: str
      sample: podman_secret db-password
    module:
      description: The unit module that converges it at runtime.
      type: str
      sample: podman_secret
    reason:
      description: Why it stays at runtime.
      type: str
      sample: a secret or credential never goes into an image
commands:
  description: The commands the module ran (none).
  returned: always
  type: list
  elements: list
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.image._context import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
