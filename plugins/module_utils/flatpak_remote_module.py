# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body of the module immutable.hosts.flatpak_remote: its argument spec and what it does with a module object.

plugins/modules/flatpak_remote.py holds the documentation and calls main(); immutable.hosts.batch runs execute() in its own
process for several calls at once.  Standard library plus ``ansible.module_utils``; Python 3.9+.
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import CommandFailed
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak_host import (
    COMMON_ARGUMENT_SPEC,
    check_installation,
    run_module,
)

MAX_READ = 1024 * 1024


def read_location(location):
    if location.startswith(("http://", "https://")):
        with open_url(location, timeout=60) as response:
            return response.read(MAX_READ)
    path = location[len("file://") :] if location.startswith("file://") else location
    with open(path, "rb") as handle:
        return handle.read(MAX_READ)


def read_key(spec):
    """Key bytes (binary OpenPGP) from inline armour or a path; fails clearly when unreadable."""
    if flatpak.is_armored(spec):
        return flatpak.dearmor(spec)
    if not os.path.isabs(spec):
        raise ValueError("gpg_key is an absolute path to a key file or inline ASCII armour; %r is neither" % spec[:80])
    try:
        with open(spec, "rb") as handle:
            data = handle.read(MAX_READ)
    except OSError as exc:
        raise ValueError("cannot read the GPG key %s: %s" % (spec, exc.strerror)) from None
    return flatpak.dearmor(data.decode("ascii", "replace")) if data.lstrip().startswith(b"-----BEGIN PGP") else data


def key_from_plain_http(params):
    """Whether the remote's GPG key would come from a .flatpakrepo fetched over plain HTTP."""
    location = params["flatpakrepo_url"] or ""
    return location.startswith("http://") and params["gpg_verify"] and not params["gpg_key"]


def validate(params):
    """Everything that can be checked without running flatpak; returns (desired, key bytes, .flatpakrepo text)."""
    flatpak.validate_remote_name(params["name"])
    for option in ("title", "comment", "url", "collection_id"):
        flatpak.validate_text(params[option], option)
    if params["state"] == "absent":
        return None, None, None
    if not params["gpg_verify"] and not params["allow_insecure"]:
        raise ValueError("gpg_verify=false turns off signature checks; confirm with allow_insecure=true")
    if params["gpg_verify"] is False and params["gpg_key"]:
        raise ValueError("gpg_key is useless with gpg_verify=false")
    if params["url"] is not None and not params["url"].startswith(("http://", "https://", "file://", "oci+http")):
        raise ValueError("url %r is not an http(s):// or file:// URL" % params["url"])
    if params["priority"] is not None and params["priority"] < 0:
        raise ValueError("priority is 0 or more")
    if params["filter"] is not None:
        if not os.path.isabs(params["filter"]):
            raise ValueError("filter is the absolute path of a filter file on the host")
        if not os.path.isfile(params["filter"]):
            raise ValueError("filter file %s does not exist" % params["filter"])
    if params["collection_id"] is not None and not flatpak.is_valid_id(params["collection_id"]):
        raise ValueError(
            "collection_id %r is not a valid collection ID (reverse DNS, like org.flathub.Stable)" % params["collection_id"]
        )
    if params["collection_id"] and not params["gpg_verify"]:
        raise ValueError("a collection ID needs GPG verification (flatpak refuses it with gpg_verify=false)")
    repo = repo_text = None
    if params["flatpakrepo_url"]:
        location = params["flatpakrepo_url"]
        if not (location.startswith(("http://", "https://", "file://")) or os.path.isabs(location)):
            raise ValueError("flatpakrepo_url is an http(s):// or file:// URL or an absolute path")
        if key_from_plain_http(params) and not params["allow_insecure"]:
            raise ValueError(
                "flatpakrepo_url %s is plain HTTP and its GPGKey would become the remote's trust anchor, which anyone on "
                "the path can swap; use https://, give gpg_key yourself, or confirm with allow_insecure=true" % location
            )
        try:
            repo_text = read_location(location).decode("utf-8")
        except (OSError, ValueError) as exc:
            raise ValueError("cannot read the .flatpakrepo %s: %s" % (location, exc)) from None
        repo = flatpak.parse_flatpakrepo(repo_text)
    key = read_key(params["gpg_key"]) if params["gpg_key"] else (repo or {}).get("gpg_key")
    if not params["gpg_verify"]:
        key = None
    desired = {
        "url": params["url"] or (repo or {}).get("url"),
        "title": params["title"] if params["title"] is not None else (repo or {}).get("title"),
        "comment": params["comment"] if params["comment"] is not None else (repo or {}).get("comment"),
        "priority": params["priority"],
        "filter": False if params["no_filter"] else params["filter"],
        "collection_id": params["collection_id"] or (repo or {}).get("collection_id"),
        "enabled": params["enabled"],
        "gpg_verify": params["gpg_verify"],
        "gpg_keys": flatpak.key_fingerprints(key) if key else [],
    }
    if desired["collection_id"] and not params["gpg_verify"]:
        desired["collection_id"] = None
    return desired, key, repo_text


def temp_file(data, suffix):
    """A private file of root's (mkstemp: new, 0600, in a sticky /tmp) made readable for flatpak running as another
    user: the mode is set on the descriptor, and the data is a public key or a .flatpakrepo."""
    fd, path = tempfile.mkstemp(prefix="immutable-hosts-flatpak-", suffix=suffix)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o644)
        handle.write(data)
    return path


def converge(host):
    params = host.module.params
    name = params["name"]
    desired, key, repo_text = validate(params)
    if key_from_plain_http(params):
        host.module.warn(
            "the GPG key of remote %s comes from %s over plain HTTP (allow_insecure=true)" % (name, params["flatpakrepo_url"])
        )
    host.require_flatpak()
    remotes = host.remotes()
    current = remotes.get(name)
    keyring = None
    if current is not None:
        data = host.read_file("repo/%s.trustedkeys.gpg" % name)
        keyring = flatpak.key_fingerprints(data) if data else []
    if current is None and params["state"] == "present" and not desired["url"]:
        raise ValueError("remote %s does not exist; adding it needs url or flatpakrepo_url" % name)
    plan = flatpak.plan_remote(current, keyring, desired, params["state"])
    if plan["changed"] and not host.module.check_mode:
        files = []
        try:
            key_file = temp_file(key, ".gpg") if plan["import_key"] else None
            files.append(key_file)
            repo_file = temp_file(repo_text.encode("utf-8"), ".flatpakrepo") if repo_text and plan["action"] == "add" else None
            files.append(repo_file)
            argv = flatpak.remote_argv(plan, name, host.scope_args, key_file=key_file, repo_file=repo_file)
            try:
                host.run(argv)
            except CommandFailed:
                if plan["action"] == "add":
                    # flatpak keeps a remote whose first summary fetch failed; leave nothing half-added.
                    host.run(["remote-delete", *host.scope_args, "--force", name], check=False)
                raise
        finally:
            for path in filter(None, files):
                os.unlink(path)
    host.exit(plan["changed"], {"before": plan["before"], "after": plan["after"]}, remote=plan["after"])


ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    url=dict(type="str"),
    flatpakrepo_url=dict(type="str"),
    gpg_key=dict(type="str", no_log=False),  # a public key
    gpg_verify=dict(type="bool", default=True),
    allow_insecure=dict(type="bool", default=False),
    title=dict(type="str"),
    comment=dict(type="str"),
    priority=dict(type="int"),
    filter=dict(type="path"),
    no_filter=dict(type="bool", default=False),
    collection_id=dict(type="str"),
    enabled=dict(type="bool", default=True),
    **COMMON_ARGUMENT_SPEC,
)
MODULE_OPTIONS = dict(mutually_exclusive=[("url", "flatpakrepo_url"), ("filter", "no_filter")])


def validate_call(params):
    """Every check the call makes before touching the host (batch runs this for all calls first)."""
    check_installation(params)
    validate(params)


def execute(module):
    run_module(module, converge)


def main():
    execute(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True, **MODULE_OPTIONS))
