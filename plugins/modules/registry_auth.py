#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: registry_auth
short_description: Credentials for a container registry, where rpm-ostree, bootc or rootless Podman read them
version_added: 0.3.0
description:
  - Writes the credentials for one registry (or one namespace of it) into a C(containers-auth.json(5)) file, mode
    0600, keeping the other registries' entries.
  - O(scope=system) writes C(/etc/ostree/auth.json), the file rpm-ostree and bootc hand to the image proxy when they
    pull an OS image (they never read root's Podman credentials). O(scope=user) writes
    C(~/.config/containers/auth.json) of O(user), which rootless Podman reads; it is written as that user's file,
    never through a link the user made.
  - The password is never shown. The module compares the stored credentials with the given ones; the diff and
    RV(secret_changed) say whether they changed, and the diff shows the user name only.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - None on the host; rpm-ostree's and bootc's image pulls read the system file.
options:
  registry:
    description:
      - The registry, as C(host[:port]), optionally with a namespace or repository (C(registry.example.com:5000/team)),
        as pulls name it.
    type: str
    required: true
  username:
    description: The user name. Required with O(state=present).
    type: str
  password:
    description: The password or token. Required with O(state=present). Never logged or shown.
    type: str
  state:
    description: V(present) stores the credentials; V(absent) removes the registry's entry.
    type: str
    default: present
    choices: [present, absent]
  scope:
    description: V(system) for the OS (rpm-ostree, bootc); V(user) for one user's rootless Podman.
    type: str
    default: system
    choices: [system, user]
  user:
    description: With O(scope=user), whose credentials these are.
    type: str
  path:
    description: With O(scope=system), another file (for example C(/run/ostree/auth.json), which does not survive a reboot).
    type: path
notes:
  - Requires C(become=true).
  - The stored form is the C(auth) field of auth.json, C(base64(user:password)), as C(skopeo login) and C(podman login)
    write it; the file is only as secret as its mode.
seealso:
  - module: immutable.hosts.image_policy
  - module: immutable.hosts.rebase
"""

EXAMPLES = r"""
- name: Let rpm-ostree and bootc pull the company's OS image
  immutable.hosts.registry_auth:
    registry: registry.example.com:5000
    username: "{{ registry_user }}"
    password: "{{ registry_password }}"
  become: true

- name: A rootless user's pulls
  immutable.hosts.registry_auth:
    registry: ghcr.io/example
    username: example-bot
    password: "{{ ghcr_token }}"
    scope: user
    user: core
  become: true
"""

RETURN = r"""
path:
  description: The auth.json file.
  returned: success
  type: str
  sample: /etc/ostree/auth.json
registry:
  description: The registry the entry is for.
  returned: success
  type: str
  sample: registry.example.com:5000
present:
  description: Whether the file holds credentials for the registry after the run.
  returned: success
  type: bool
  sample: true
secret_changed:
  description: Whether the stored credentials changed (or would, in check mode); the value itself is never returned.
  returned: success
  type: bool
  sample: false
commands:
  description: The commands run, as argument lists (none).
  returned: always
  type: list
  elements: list
  sample: []
diff:
  description: The registry's entry before and after, with the user name and the password hidden.
  returned: success
  type: dict
"""


from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.containers._auth import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
