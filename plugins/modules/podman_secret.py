#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: podman_secret
short_description: Keep a Podman secret of the system or of a rootless user
version_added: 0.2.0
description:
  - Keeps one Podman secret (C(podman secret)) as given, for root or for a rootless user, so that the user's Quadlet
    units can read it with C(Secret=).
  - The current data is read back with C(podman secret inspect --showsecret) and compared exactly, line breaks at
    its end included. When it differs or is missing, C(podman secret create --replace NAME -) writes it from standard
    input, so the data never appears on a command line, in C(commands), in the diff or in a message.
  - For another user, podman runs as that user (C(runuser -u USER --) with the user's C(XDG_RUNTIME_DIR)).
  - A container reads its secrets when it starts. M(immutable.hosts.host_state) restarts the running services of a
    user whose units use a secret that changed; with this module alone, restart them yourself.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - podman 4.7 or later (secret inspect --showsecret, secret create --replace).
options:
  name:
    description: The secret's name (letters, digits, C(_.-), at most 253 characters).
    type: str
    required: true
  user:
    description:
      - The rootless user whose secret this is. Unset, the secret is root's (the system's rootful containers).
      - Root acting for another user needs C(become=true).
    type: str
  data:
    description:
      - The secret's content, as text. Required with O(state=present).
      - Never logged (C(no_log)); the diff only says whether the data on the host is the wanted one.
    type: str
  state:
    description: V(present) keeps the secret with O(data); V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Needs podman 4.7 or later (C(secret inspect --showsecret) and C(secret create --replace)).
seealso:
  - module: immutable.hosts.quadlet
  - module: immutable.hosts.host_state
"""

EXAMPLES = r"""
- name: The database password of core's containers
  immutable.hosts.podman_secret:
    name: db-password
    user: core
    data: "{{ vault_db_password }}"
  become: true

- name: Remove an old secret of the system's containers
  immutable.hosts.podman_secret:
    name: legacy-token
    state: absent
  become: true
"""

RETURN = r"""
name:
  description: The secret's name.
  returned: always
  type: str
  sample: db-password
user:
  description: The user whose secret it is; null for root's.
  returned: always
  type: str
  sample: core
scope:
  description: V(system) for root's secret, V(user) for a rootless user's.
  returned: always
  type: str
  sample: user
action:
  description: What the run did (or would do in check mode) - V(create), V(replace), V(remove) - or null.
  returned: always
  type: str
  sample: replace
commands:
  description: The commands run, as argument lists (the data is never one of their arguments).
  returned: always
  type: list
  elements: list
  sample: [[/usr/sbin/runuser, -u, core, --, env, XDG_RUNTIME_DIR=/run/user/1000, "...", podman, secret, inspect, "..."]]
diff:
  description: Whether the secret exists and holds the wanted data, before and after; never the data itself.
  returned: success
  type: dict
  sample:
    before: {state: present, data: (other data)}
    after: {state: present, data: (as wanted)}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.podman._secrets import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
