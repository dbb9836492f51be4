#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rootless_user
short_description: Make a user able to run rootless Podman containers as systemd services
version_added: 0.1.0
description:
  - Gives a user what rootless Podman and Quadlet need, and reports where the user's units and runtime live.
  - Subordinate ids. The user's entries in C(/etc/subuid) and C(/etc/subgid), counted by login name and by numeric
    uid, together hold at least O(subuid_count) and O(subgid_count) ids. When they do not, one new range of the
    missing amount goes in the lowest free gap at or above C(SUB_UID_MIN)/C(SUB_GID_MIN) of C(/etc/login.defs),
    overlapping nobody's range, through C(usermod --add-subuids/--add-subgids) (or an atomic edit of the file when
    usermod is missing). An existing entry is never duplicated.
  - Linger. With O(linger=true), C(loginctl enable-linger) starts the user's systemd instance at boot, so units keep
    running without a login session. The state is read from C(/var/lib/systemd/linger/NAME).
  - A converged host sees no command at all.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - loginctl (systemd-logind) for O(linger); useradd (shadow-utils) with O(create=true); usermod with --add-subuids and
    --add-subgids for new subordinate ranges when it is there, else the module edits the files itself.
options:
  name:
    description: The login name.
    type: str
    required: true
  create:
    description:
      - Create the user (C(useradd --create-home)) when missing. Without it a missing user fails the task.
      - C(useradd) may add subordinate ids itself (shadow's C(SUB_UID_COUNT)); they are counted before any is added.
    type: bool
    default: false
  subuid_count:
    description: The number of subordinate uids the user needs.
    type: int
    default: 65536
  subgid_count:
    description: The number of subordinate gids the user needs.
    type: int
    default: 65536
  linger:
    description: Keep the user's systemd instance running without a login session (C(loginctl enable-linger)).
    type: bool
    default: true
  state:
    description:
      - V(present) ensures the ranges and the linger setting.
      - V(absent) removes every subordinate id entry of the user (by name and by uid) and turns linger off. The
        account itself is never removed.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Requires C(become=true).
  - Enabling linger starts the user's instance asynchronously; M(immutable.hosts.quadlet) waits for it.
seealso:
  - module: immutable.hosts.quadlet
"""

EXAMPLES = r"""
- name: core runs rootless containers that survive logout
  immutable.hosts.rootless_user:
    name: core
  become: true
  register: core_user

- name: A service account, created when missing, with a larger id range
  immutable.hosts.rootless_user:
    name: builder
    create: true
    subuid_count: 131072
    subgid_count: 131072
  become: true

- name: Take rootless containers away from a user
  immutable.hosts.rootless_user:
    name: olduser
    state: absent
  become: true
"""

RETURN = r"""
uid:
  description: The user's uid; null when the user does not exist yet (check mode with O(create)).
  returned: always
  type: int
  sample: 1000
gid:
  description: The user's primary gid; null when the user does not exist yet.
  returned: always
  type: int
  sample: 1000
home:
  description: The user's home directory; null when the user does not exist yet.
  returned: always
  type: str
  sample: /var/home/core
runtime_dir:
  description: The user's C(XDG_RUNTIME_DIR); null when the user does not exist yet.
  returned: always
  type: str
  sample: /run/user/1000
quadlet_dir:
  description: Where the user's Quadlet units go; null when the user does not exist yet.
  returned: always
  type: str
  sample: /var/home/core/.config/containers/systemd
subuid:
  description: The user's subordinate uid ranges after the run (predicted in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{start: 100000, count: 65536}]
subgid:
  description: The user's subordinate gid ranges after the run (predicted in check mode).
  returned: always
  type: list
  elements: dict
  sample: [{start: 100000, count: 65536}]
linger:
  description: Whether linger is on after the run.
  returned: always
  type: bool
  sample: true
created:
  description: Whether the user was created.
  returned: always
  type: bool
  sample: false
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/sbin/usermod, --add-subuids, 100000-165535, --add-subgids, 100000-165535, core], [/usr/bin/loginctl, enable-linger, core]]
diff:
  description: The user's ranges, linger and existence, before and after.
  returned: success
  type: dict
  sample:
    before: {exists: true, subuid: [], subgid: [], linger: false}
    after: {exists: true, subuid: [{start: 100000, count: 65536}], subgid: [{start: 100000, count: 65536}], linger: true}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.podman._rootless import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
