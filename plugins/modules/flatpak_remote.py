#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: flatpak_remote
short_description: Add, reconcile in place, or remove a Flatpak remote
version_added: 0.1.0
description:
  - Makes a Flatpak remote present with the given URL, GPG key, filter, title, comment, priority, collection ID and
    enabled state, or absent.
  - An existing remote is B(reconciled in place) with one C(flatpak remote-modify) call carrying every change, so
    Fedora's filtered, disabled C(flathub) becomes the unfiltered, enabled remote and a second run changes nothing
    (C(community.general.flatpak_remote) never updates an existing remote).
  - Reads C(flatpak remotes --show-disabled --columns=...) once and the remote's keyring file; GPG keys are compared
    by fingerprint. A converged host costs one flatpak process.
  - A failed C(remote-add) (wrong GPG key, unreachable URL) leaves no half-added remote behind; flatpak itself
    would keep it.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.flatpak
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - flatpak 1.3.4 or later (remote filters, the filter and comment columns).
  - runuser (util-linux) on the host when O(user) names another user.
options:
  name:
    description: Name of the remote.
    type: str
    required: true
  state:
    description: Whether the remote is present or absent. Removal uses C(remote-delete --force); installed refs stay.
    type: str
    choices: [present, absent]
    default: present
  url:
    description:
      - URL of the repository. Mutually exclusive with O(flatpakrepo_url).
      - Required to add a remote unless O(flatpakrepo_url) is given.
    type: str
  flatpakrepo_url:
    description:
      - URL (C(http://), C(https://), C(file://)) or absolute path of a C(.flatpakrepo) file. Its C(Url), C(GPGKey),
        C(Title), C(Comment) and collection ID are the defaults of O(url), O(gpg_key), O(title), O(comment) and
        O(collection_id); explicit options win. The file is read on every run, also in check mode.
    type: str
  gpg_key:
    description:
      - The repository's public GPG key, as a path to a key file (binary or ASCII armour) on the managed host, or
        inline ASCII armour (C(-----BEGIN PGP PUBLIC KEY BLOCK-----)).
      - Compared by fingerprint with the remote's keyring; a missing key is imported with C(--gpg-import). Keys
        already in the keyring are not removed. Diffs and results show fingerprints, never the key.
    type: str
  gpg_verify:
    description:
      - Verify the repository's signatures. Turning it off needs O(allow_insecure=true).
    type: bool
    default: true
  allow_insecure:
    description:
      - Confirms O(gpg_verify=false) is intended.
      - Also confirms a O(flatpakrepo_url) over plain C(http://) whose C(GPGKey) would become the remote's key
        (without O(gpg_key)); anyone on the network path could swap that key, so it is refused otherwise, and
        warned about when confirmed.
    type: bool
    default: false
  title:
    description: Title of the remote (C(xa.title)).
    type: str
  comment:
    description: One-line comment of the remote.
    type: str
  priority:
    description: Priority of the remote (higher wins; flatpak's default is 1).
    type: int
  filter:
    description: Absolute path of a local filter file on the managed host. Mutually exclusive with O(no_filter).
    type: path
  no_filter:
    description: Make sure the remote has no filter (Fedora ships C(flathub) filtered).
    type: bool
    default: false
  collection_id:
    description: Collection ID of the remote (needs GPG verification).
    type: str
  enabled:
    description: Whether the remote is enabled. Fedora ships C(flathub) disabled.
    type: bool
    default: true
notes:
  - O(scope), O(user) and O(installation) pick the installation, as in M(immutable.hosts.flatpak).
  - With O(user), flatpak runs as that user through C(runuser -u USER --), with C(HOME), C(USER) and C(LOGNAME)
    from the passwd entry and C(XDG_RUNTIME_DIR=/run/user/UID) plus its session bus when they exist; the module
    needs root for that (C(become=true)).
seealso:
  - module: immutable.hosts.flatpak
  - module: immutable.hosts.flatpak_override
"""

EXAMPLES = r"""
- name: Fedora's flathub, unfiltered and enabled
  immutable.hosts.flatpak_remote:
    name: flathub
    flatpakrepo_url: https://dl.flathub.org/repo/flathub.flatpakrepo
    no_filter: true
  become: true

- name: A company repository with its key, preferred over flathub
  immutable.hosts.flatpak_remote:
    name: corp
    url: https://flatpak.example.com/repo/
    gpg_key: /etc/pki/flatpak/corp.gpg
    title: Example Corp
    priority: 10
  become: true

- name: Alice's own remote
  immutable.hosts.flatpak_remote:
    name: flathub
    flatpakrepo_url: https://dl.flathub.org/repo/flathub.flatpakrepo
    user: alice
  become: true

- name: No more beta
  immutable.hosts.flatpak_remote:
    name: flathub-beta
    state: absent
  become: true
"""

RETURN = r"""
remote:
  description: The remote after the run (predicted in check mode); GPG keys as fingerprints.
  returned: success
  type: dict
  sample:
    state: present
    url: https://dl.flathub.org/repo/
    title: Flathub
    comment: null
    priority: 1
    filter: null
    collection_id: null
    enabled: true
    gpg_verify: true
    gpg_keys: [6E5C05D979C76DAF93C08F3D4C7A8C8C9C4E2B3A]
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample:
    - [/usr/bin/flatpak, remotes, --system, --show-disabled, "--columns=name:f,url:f"]
    - [/usr/bin/flatpak, remote-modify, --system, --no-filter, --enable, flathub]
diff:
  description: The remote before and after, as data.
  returned: success
  type: dict
  sample: {before: {state: present, filter: /usr/share/flatpak/fedora-flathub.filter, enabled: false}, after: {state: present, filter: null, enabled: true}}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._remotes import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
