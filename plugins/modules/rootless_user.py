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

import os
import pwd
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import rootless
from ansible_collections.immutable.hosts.plugins.module_utils.runner import Runner, RunnerError

# Host paths, replaced in tests.
SUBUID = "/etc/subuid"
SUBGID = "/etc/subgid"
LOGIN_DEFS = "/etc/login.defs"
LINGER_DIR = rootless.LINGER_DIR
lookup_user = pwd.getpwnam


def make_runner():
    return Runner()


class Failure(Exception):
    pass


def read_text(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(module, path, text):
    fd, temp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    existed = os.path.exists(path)
    module.atomic_move(temp, path)
    if not existed:
        os.chmod(path, 0o644)


def find_user(name):
    try:
        return lookup_user(name)
    except KeyError:
        return None


def read_subids():
    """Both files and the limits, read once."""
    texts = {"uid": read_text(SUBUID), "gid": read_text(SUBGID)}
    entries = {kind: rootless.parse_subid(text) for kind, text in texts.items()}
    return texts, entries, rootless.parse_login_defs(read_text(LOGIN_DEFS))


def plan_both(entries, limits, name, uid, params, state):
    return {
        "uid": rootless.plan_subids(entries["uid"], name, uid, params["subuid_count"], state, limits["uid"]),
        "gid": rootless.plan_subids(entries["gid"], name, uid, params["subgid_count"], state, limits["gid"]),
    }


def converge(module, runner):
    params = module.params
    name = rootless.validate_name(params["name"])
    rootless.validate_count("subuid_count", params["subuid_count"])
    rootless.validate_count("subgid_count", params["subgid_count"])
    state = params["state"]

    user = find_user(name)
    if user is None and state == "present" and not params["create"]:
        raise Failure("user %r does not exist; create it first or set create=true" % name)
    if user is not None and user.pw_uid == 0:
        raise Failure("%r has uid 0: root runs rootful containers and needs no subordinate ids or linger" % name)
    uid = user.pw_uid if user else None
    texts, entries, limits = read_subids()
    for kind in ("uid", "gid"):
        for first, second in rootless.overlaps(entries[kind]):
            module.warn(
                "/etc/sub%s: the ranges of %s (%d+%d) and %s (%d+%d) overlap"
                % (kind, first["owner"], first["start"], first["count"], second["owner"], second["start"], second["count"])
            )
    plans = plan_both(entries, limits, name, uid, params, state)
    linger_before = os.path.exists(rootless.linger_path(name, LINGER_DIR))
    linger_action = rootless.plan_linger(linger_before, params["linger"] if state == "present" else False)
    if user is None and linger_action == "disable-linger":
        linger_action = None  # nobody to linger for: loginctl would refuse the unknown name
    create = user is None and state == "present"
    before = {
        "exists": user is not None,
        "subuid": plans["uid"]["before"],
        "subgid": plans["gid"]["before"],
        "linger": linger_before,
    }

    if not module.check_mode:
        if create:
            runner.run(["useradd", "--create-home", name])
            user = find_user(name)
            if user is None:
                raise Failure("useradd reported success but user %r cannot be looked up" % name)
            uid = user.pw_uid
            texts, entries, limits = read_subids()  # useradd may have added ranges of its own
            plans = plan_both(entries, limits, name, uid, params, state)
        adding = rootless.usermod_args(plans["uid"], plans["gid"])
        use_usermod = bool(adding) and runner.which("usermod") is not None
        if use_usermod:
            runner.run(["usermod"] + adding + [name])
        for kind, path in (("uid", SUBUID), ("gid", SUBGID)):
            if plans[kind]["remove"] or (plans[kind]["add"] and not use_usermod):
                write_atomically(module, path, rootless.edit_subid(texts[kind], name, uid, plans[kind]))
        if linger_action:
            runner.run(["loginctl", linger_action, name])

    linger_after = linger_before if linger_action is None else linger_action == "enable-linger"
    after = {
        "exists": user is not None or create,
        "subuid": plans["uid"]["after"],
        "subgid": plans["gid"]["after"],
        "linger": linger_after,
    }
    changed = create or plans["uid"]["changed"] or plans["gid"]["changed"] or linger_action is not None
    home = user.pw_dir if user else None
    return {
        "changed": changed,
        "diff": {"before": before, "after": after},
        "uid": uid,
        "gid": user.pw_gid if user else None,
        "home": home,
        "runtime_dir": rootless.runtime_dir(uid) if uid is not None else None,
        "quadlet_dir": rootless.quadlet_dir(home) if home else None,
        "subuid": after["subuid"],
        "subgid": after["subgid"],
        "linger": linger_after,
        "created": create,
    }


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            create=dict(type="bool", default=False),
            subuid_count=dict(type="int", default=rootless.DEFAULT_COUNT),
            subgid_count=dict(type="int", default=rootless.DEFAULT_COUNT),
            linger=dict(type="bool", default=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
        ),
        supports_check_mode=True,
    )
    runner = make_runner()
    try:
        result = converge(module, runner)
    except (Failure, rootless.InvalidRootless) as exc:
        module.fail_json(msg=str(exc), commands=runner.commands)
    except (OSError, RunnerError) as exc:
        module.fail_json(
            msg="cannot prepare user %s for rootless containers: %s" % (module.params["name"], exc), commands=runner.commands
        )
    module.exit_json(commands=runner.commands, **result)


if __name__ == "__main__":
    main()
