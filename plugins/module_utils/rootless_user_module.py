# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body of the module immutable.hosts.rootless_user: its argument spec and what it does with a module object.

plugins/modules/rootless_user.py holds the documentation and calls main(); immutable.hosts.batch runs execute() in its own
process for several calls at once.  Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import os
import pwd

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import rootless
from ansible_collections.immutable.hosts.plugins.module_utils.common import _files as safe_files
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner, RunnerError

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


def validate(params):
    """Everything that can be checked before the host is touched; returns (name, passwd entry or None)."""
    name = rootless.validate_name(params["name"])
    rootless.validate_count("subuid_count", params["subuid_count"])
    rootless.validate_count("subgid_count", params["subgid_count"])
    user = find_user(name)
    if user is None and params["state"] == "present" and not params["create"]:
        raise Failure("user %r does not exist; create it first or set create=true" % name)
    if user is not None and user.pw_uid == 0:
        raise Failure("%r has uid 0: root runs rootful containers and needs no subordinate ids or linger" % name)
    return name, user


def converge(module, runner):
    params = module.params
    name, user = validate(params)
    state = params["state"]
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
                safe_files.replace_file(path, rootless.edit_subid(texts[kind], name, uid, plans[kind]))
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


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    create=dict(type="bool", default=False),
    subuid_count=dict(type="int", default=rootless.DEFAULT_COUNT),
    subgid_count=dict(type="int", default=rootless.DEFAULT_COUNT),
    linger=dict(type="bool", default=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)
MODULE_OPTIONS = {}


def validate_call(params):
    """Every check the call makes before touching the host (batch runs this for all calls first)."""
    validate(params)


def execute(module):
    runner = make_runner()
    try:
        result = converge(module, runner)
    except (Failure, rootless.InvalidRootless, safe_files.UnsafePath) as exc:
        module.fail_json(msg=str(exc), commands=runner.commands)
    except (OSError, RunnerError) as exc:
        module.fail_json(
            msg="cannot prepare user %s for rootless containers: %s" % (module.params["name"], exc), commands=runner.commands
        )
    module.exit_json(commands=runner.commands, **result)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
