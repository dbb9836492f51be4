#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rpm_repo
short_description: A package repository rpm-ostree can layer from, and its signing key
version_added: 0.3.0
description:
  - Defines, changes or removes one repository (C([id]) section) in C(/etc/yum.repos.d), the files rpm-ostree's
    package layering reads, so packages that the base image's repositories do not have (RPM Fusion, a vendor's
    repository) can be layered.
  - A new repository gets a file of its own, C(/etc/yum.repos.d/ID.repo), with GPG checks on unless
    O(gpgcheck=false). A repository defined elsewhere (Fedora's C(fedora-cisco-openh264), a vendor's file) is edited
    in place; only the options given change, every other line and comment stays.
  - O(key) (the repository's ASCII-armored public key) is written to C(/etc/pki/rpm-gpg/RPM-GPG-KEY-ID) and named
    first in C(gpgkey).
  - O(copr) enables a COPR project by C(owner/project), as C(dnf copr enable) would on a package-mode system. The
    repository file the COPR hub serves for the host's release and architecture is stored as
    C(/etc/yum.repos.d/_copr:HUB:OWNER:PROJECT.repo), with its own GPG settings (C(gpgcheck=1) and the project's key
    URL). The release is that of the deployment the next change builds on (a pending one included), read from its
    C(os-release). Run again, the file is compared with what the hub serves now.
  - Each file is written atomically; the diff shows the file and the key.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - None on the host; rpm-ostree, when it is there, names the release and architecture of a COPR project's chroot.
options:
  name:
    description:
      - The repository id (the section name), for example C(rpmfusion-free) or C(tailscale-stable).
      - Required unless O(copr) is given; mutually exclusive with it.
    type: str
  copr:
    description:
      - A COPR project, C(owner/project) or C(@group/project). Its repository is the file the hub serves; of the
        other options only O(state), O(enabled) and O(priority) apply (O(enabled) to every repository in the file,
        O(priority) to the project's).
    type: str
  copr_hub:
    description:
      - The COPR instance, as a host name with an optional port or an C(https://) URL. Plain C(http://) is refused
        because the file it serves names the key its packages are checked with.
      - Default C(copr.fedorainfracloud.org).
    type: str
  copr_chroot:
    description:
      - The COPR chroot whose file to fetch, C(DISTRIBUTION-RELEASE-ARCH) (C(fedora-42-aarch64)). Default, from the
        next deployment's C(os-release) (C(ID), C(VERSION_ID)) and the machine's architecture, as C(dnf copr) guesses it.
    type: str
  state:
    description: V(present) defines or changes the repository; V(absent) removes its section (and its file once empty).
    type: str
    default: present
    choices: [present, absent]
  description:
    description: The repository's name (C(name=)); default for a new one, its id.
    type: str
  baseurl:
    description: Base URLs (C($releasever) and C($basearch) are expanded by rpm-ostree). Excludes O(metalink) and O(mirrorlist).
    type: list
    elements: str
  metalink:
    description: A metalink URL.
    type: str
  mirrorlist:
    description: A mirror list URL.
    type: str
  enabled:
    description: Whether rpm-ostree uses the repository. Default for a new one, V(true).
    type: bool
  gpgcheck:
    description: Check each package's signature. Default for a new one, V(true).
    type: bool
  repo_gpgcheck:
    description: Check the signature of the repository's metadata.
    type: bool
  gpgkey:
    description: URLs of the keys packages are signed with (C(file://), C(https://)).
    type: list
    elements: str
  key:
    description: The signing key's text, written to C(/etc/pki/rpm-gpg/RPM-GPG-KEY-ID) and named first in C(gpgkey).
    type: str
  priority:
    description: 1 (used first) to 99 (the default).
    type: int
  path:
    description: The file to write; default, the file that already defines the repository, else C(/etc/yum.repos.d/ID.repo).
    type: path
notes:
  - Requires C(become=true).
  - The COPR file is read over HTTPS with the host's certificate store, also in check mode (to show the exact diff).
  - A repository is read by the next C(rpm-ostree install); nothing is layered here (see M(immutable.hosts.rpm_ostree_packages)).
seealso:
  - module: immutable.hosts.rpm_ostree_packages
"""

EXAMPLES = r"""
- name: Tailscale's repository, with its key
  immutable.hosts.rpm_repo:
    name: tailscale-stable
    description: Tailscale stable
    baseurl: ["https://pkgs.tailscale.com/stable/fedora/$basearch"]
    key: "{{ lookup('ansible.builtin.file', 'tailscale.asc') }}"
  become: true

- name: A COPR project, for the host's release and architecture
  immutable.hosts.rpm_repo:
    copr: atim/starship
  become: true

- name: Turn on Fedora's OpenH264 repository
  immutable.hosts.rpm_repo:
    name: fedora-cisco-openh264
    enabled: true
  become: true
"""

RETURN = r"""
path:
  description: The .repo file.
  returned: success
  type: str
  sample: /etc/yum.repos.d/tailscale-stable.repo
repo:
  description: The repository's options after the run (null once removed).
  returned: success
  type: dict
  sample: {name: Tailscale stable, baseurl: "https://pkgs.tailscale.com/stable/fedora/$basearch", enabled: "1", gpgcheck: "1"}
copr:
  description: With O(copr), the project, and when present, the chroot and the URL its file was read from.
  returned: when O(copr) is given
  type: dict
  sample: {project: atim/starship, chroot: fedora-42-x86_64, url: "https://copr.fedorainfracloud.org/coprs/atim/starship/repo/fedora-42/dnf.repo?arch=x86_64"}
key_path:
  description: The key file written from O(key) (null without it).
  returned: success
  type: str
  sample: /etc/pki/rpm-gpg/RPM-GPG-KEY-tailscale-stable
commands:
  description: The commands run, as argument lists (C(rpm-ostree status) for O(copr) without O(copr_chroot), else none).
  returned: always
  type: list
  elements: list
  sample: []
diff:
  description: The file before and after, and the key when it changes.
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._repos import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
