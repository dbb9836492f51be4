# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body of the module immutable.hosts.flatpak_override: its argument spec and what it does with a module object.

plugins/modules/flatpak_override.py holds the documentation and calls main(); immutable.hosts.batch runs execute() in its own
process for several calls at once.  Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak_host import (
    COMMON_ARGUMENT_SPEC,
    check_installation,
    run_module,
)


def validate(params):
    app = params["app"]
    if params["global"] and app:
        raise ValueError("app and global=true exclude each other")
    if not params["global"] and not app:
        raise ValueError("give app (an application ID) or global=true")
    if app is not None and not flatpak.is_valid_id(app):
        raise ValueError("app %r is not a valid flatpak application ID" % app)
    options = flatpak.validate_override(params)
    given = any(options[option] for option in flatpak.OVERRIDE_OPTIONS)
    if params["state"] == "present" and params["mode"] == "merge" and not given:
        raise ValueError("state=present with mode=merge needs at least one entry (or use state=absent to reset)")
    if params["state"] == "absent" and params["mode"] == "exact":
        raise ValueError("mode=exact applies to state=present; state=absent removes the given entries or everything")
    return options


def converge(host):
    params = host.module.params
    options = validate(params)
    path = flatpak.override_path(host.directory(), params["app"])
    name = os.path.basename(path)
    directory = host.open_directory("overrides")
    try:
        text = directory.read_text(name) if directory is not None else None
        current = flatpak.parse_override(text or "")
        plan = flatpak.plan_override(current, options, params["mode"], params["state"])
        if plan["changed"] and not host.module.check_mode:
            if plan["remove_file"]:
                if directory is not None:
                    directory.remove(name)
            else:
                if directory is None:
                    directory = host.open_directory("overrides", create=True)
                directory.write(name, plan["text"], 0o644)
    finally:
        if directory is not None:
            directory.close()
    host.exit(plan["changed"], {"before": plan["before"], "after": plan["after"]}, path=path, override=plan["after"])


LIST_OPTIONS = (
    "filesystems",
    "nofilesystems",
    "sockets",
    "nosockets",
    "devices",
    "nodevices",
    "shares",
    "unshares",
    "features",
    "unset_environment",
    "talk_names",
    "own_names",
    "system_talk_names",
    "persist",
)
ARGUMENT_SPEC = dict(
    app=dict(type="str"),
    mode=dict(type="str", choices=["merge", "exact"], default="merge"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    environment=dict(type="dict", default={}),
    **{"global": dict(type="bool", default=False)},
    **{option: dict(type="list", elements="str", default=[]) for option in LIST_OPTIONS},
    **COMMON_ARGUMENT_SPEC,
)
MODULE_OPTIONS = {}


def validate_call(params):
    """Every check the call makes before touching the host (batch runs this for all calls first)."""
    check_installation(params)
    validate(params)


def execute(module):
    run_module(module, converge)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
