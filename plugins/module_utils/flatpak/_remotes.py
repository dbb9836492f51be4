# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Flatpak remotes reconciled in place (the unit of ``immutable.hosts.flatpak_remote``): ``flatpak remotes`` and
``.flatpakrepo`` files parsed, the remote planned field by field against what is listed and the fingerprints in its
keyring, and one ``remote-add``, ``remote-modify`` or ``remote-delete`` built from the plan.

Standard library only; Python 3.9+.
"""

from __future__ import annotations

import base64
import os
import tempfile
from typing import Optional

from ansible_collections.immutable.hosts.plugins.module_utils.common import _keyfile as keyfile
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import CommandFailed
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import Plan
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _installation as installation
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _openpgp as openpgp
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._names import (
    FlatpakError,
    is_valid_id,
    validate_remote_name,
    validate_text,
)

REMOTE_COLUMNS = ("name", "url", "title", "comment", "priority", "filter", "collection", "options")
REMOTE_FIELDS = ("url", "title", "comment", "priority", "filter", "collection_id", "enabled", "gpg_verify")
MAX_READ = 1024 * 1024


# --- reading --------------------------------------------------------------------------------------------------------------


def parse_remotes(text: str) -> dict:
    """``flatpak remotes --show-disabled --columns=<REMOTE_COLUMNS>`` into {name: remote}."""
    remotes = {}
    for row in installation.rows(text, REMOTE_COLUMNS):
        options = installation.options(row["options"])
        try:
            priority = int(row["priority"])
        except ValueError:
            raise FlatpakError("unexpected priority %r of remote %s" % (row["priority"], row["name"])) from None
        remotes[row["name"]] = {
            "name": row["name"],
            "url": row["url"],
            "title": installation.dash(row["title"]),
            "comment": installation.dash(row["comment"]),
            "priority": priority,
            "filter": installation.dash(row["filter"]),
            "collection_id": installation.dash(row["collection"]),
            "enabled": "disabled" not in options,
            "gpg_verify": "no-gpg-verify" not in options,
        }
    return remotes


def parse_flatpakrepo(text: str) -> dict:
    """A ``.flatpakrepo`` file: url, GPG key bytes, title, comment, collection id (None where absent)."""
    try:
        groups = keyfile.parse(text)
    except keyfile.KeyfileError as exc:
        raise FlatpakError("not a .flatpakrepo file: %s" % exc) from None
    repo = groups.get("Flatpak Repo")
    if not repo or not repo.get("Url"):
        raise FlatpakError("not a .flatpakrepo file: no [Flatpak Repo] group with a Url")
    key = None
    if repo.get("GPGKey"):
        try:
            key = base64.b64decode(repo["GPGKey"], validate=True)
        except ValueError:
            raise FlatpakError("the .flatpakrepo GPGKey is not valid base64") from None
    return {
        "url": repo["Url"],
        "gpg_key": key,
        "title": repo.get("Title"),
        "comment": repo.get("Comment"),
        "collection_id": repo.get("DeploymentCollectionID") or repo.get("CollectionID"),
    }


def listed(where: installation.Installation) -> dict:
    """The installation's remotes, disabled ones included, once per run."""

    def read() -> dict:
        argv = ["remotes", *where.scope_args, "--show-disabled", installation.columns_arg(REMOTE_COLUMNS)]
        return parse_remotes(where.run(argv).stdout)

    return where.once("remotes", read)


def require_enabled(where: installation.Installation, remote: str) -> None:
    """Fail clearly (and before installing anything) when the remote is unknown or disabled."""
    remotes = listed(where)
    if remote not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise FlatpakError(
            "remote %s is not configured in this installation (known: %s); add it with flatpak_remote" % (remote, known)
        )
    if not remotes[remote]["enabled"]:
        raise FlatpakError("remote %s is disabled; enable it with flatpak_remote (enabled: true)" % remote)


# --- planning -------------------------------------------------------------------------------------------------------------


def _remote_view(remote: Optional[dict], keys: Optional[list]) -> dict:
    if remote is None:
        return {"state": "absent"}
    view = {"state": "present"}
    view.update({field: remote.get(field) for field in REMOTE_FIELDS})
    view["gpg_keys"] = sorted(keys or [])
    return view


def plan_remote(current: Optional[dict], current_keys: Optional[list], desired: dict, state: str) -> dict:
    """From the remote as listed (None when missing) and the fingerprints in its keyring to ``desired``.

    ``desired`` holds REMOTE_FIELDS and ``gpg_keys`` (fingerprints); a value of None leaves that field as it is
    (``filter: False`` means no filter).  Returns ``{"changed", "action": add|modify|delete|None, "set": {field:
    value}, "import_key", "before", "after"}``.
    """
    before = _remote_view(current, current_keys)
    if state == "absent":
        action = "delete" if current is not None else None
        return {
            "changed": bool(action),
            "action": action,
            "set": {},
            "import_key": False,
            "before": before,
            "after": {"state": "absent"},
        }
    wanted_keys = desired.get("gpg_keys") or []
    if current is None:
        after = {"state": "present", "title": None, "comment": None, "priority": 1, "filter": None, "collection_id": None}
        after.update({"enabled": True, "gpg_verify": True})
        after.update({field: desired[field] for field in REMOTE_FIELDS if desired.get(field) is not None})
        after["filter"] = desired.get("filter") or None
        after["gpg_keys"] = sorted(wanted_keys)
        after = _ordered(after)
        setting = {field: desired[field] for field in REMOTE_FIELDS if desired.get(field) is not None}
        return {
            "changed": True,
            "action": "add",
            "set": setting,
            "import_key": bool(wanted_keys),
            "before": before,
            "after": after,
        }
    setting = {}
    for field in REMOTE_FIELDS:
        want = desired.get(field)
        if want is None:
            continue
        have = current.get(field)
        if field == "filter":
            want = want or None
        if want != have:
            setting[field] = want
    import_key = bool(set(wanted_keys) - set(current_keys or []))
    after = dict(before)
    after.update(setting)
    if import_key:
        after["gpg_keys"] = sorted(set(current_keys or []) | set(wanted_keys))
    changed = bool(setting or import_key)
    return {
        "changed": changed,
        "action": "modify" if changed else None,
        "set": setting,
        "import_key": import_key,
        "before": before,
        "after": after,
    }


def assumed_listing(remotes: dict, name: str, after: dict) -> dict:
    """``remotes`` (as :func:`parse_remotes` returns them) as they would be listed once remote ``name`` is ``after``
    (a planned view)."""
    remotes = dict(remotes)
    if after["state"] == "absent":
        remotes.pop(name, None)
    else:
        remotes[name] = dict({"name": name}, **{field: after.get(field) for field in REMOTE_FIELDS})
    return remotes


def _ordered(view: dict) -> dict:
    return {key: view.get(key) for key in ("state", *REMOTE_FIELDS, "gpg_keys")}


def remote_argv(plan: dict, name: str, scope: list, key_file: Optional[str] = None, repo_file: Optional[str] = None) -> list:
    """The flatpak argv (without the binary) of a remote plan; ``repo_file`` is a local .flatpakrepo copy for adding."""
    action, setting = plan["action"], plan["set"]
    if action == "delete":
        return ["remote-delete", *scope, "--force", name]
    argv = ["remote-add" if action == "add" else "remote-modify", *scope]
    if action == "add" and repo_file:
        argv.append("--from")
    if plan["import_key"]:
        argv.append("--gpg-import=" + key_file)
    if "gpg_verify" in setting:
        if not setting["gpg_verify"]:
            argv.append("--no-gpg-verify")
        elif action == "modify":
            argv.append("--gpg-verify")
    if action == "modify" and "url" in setting:
        argv.append("--url=" + setting["url"])
    for field, flag in (("title", "--title="), ("comment", "--comment="), ("collection_id", "--collection-id=")):
        if field in setting:
            argv.append(flag + setting[field])
    if "priority" in setting:
        argv.append("--prio=%d" % setting["priority"])
    if "filter" in setting:
        if setting["filter"]:
            argv.append("--filter=" + setting["filter"])
        elif action == "modify":
            argv.append("--no-filter")
    if "enabled" in setting:
        if not setting["enabled"]:
            argv.append("--disable")
        elif action == "modify":
            argv.append("--enable")
    argv.append(name)
    if action == "add":
        argv.append(repo_file or setting["url"])
    return argv


# --- the unit -------------------------------------------------------------------------------------------------------------


def read_key(host, spec: str) -> bytes:
    """Key bytes (binary OpenPGP) from inline armour or a file of the host; fails clearly when unreadable."""
    if openpgp.is_armored(spec):
        return openpgp.dearmor(spec)
    if not os.path.isabs(spec):
        raise FlatpakError("gpg_key is an absolute path to a key file or inline ASCII armour; %r is neither" % spec[:80])
    try:
        data = host.fetch(spec, MAX_READ)
    except OSError as exc:
        raise FlatpakError("cannot read the GPG key %s: %s" % (spec, exc.strerror)) from None
    return openpgp.dearmor(data.decode("ascii", "replace")) if data.lstrip().startswith(b"-----BEGIN PGP") else data


def key_from_plain_http(params: dict) -> bool:
    """Whether the remote's GPG key would come from a .flatpakrepo fetched over plain HTTP."""
    location = params["flatpakrepo_url"] or ""
    return location.startswith("http://") and params["gpg_verify"] and not params["gpg_key"]


def check_options(params: dict, host) -> None:
    """The options alone, before any file or URL is read."""
    validate_remote_name(params["name"])
    for option in ("title", "comment", "url", "collection_id"):
        validate_text(params[option], option)
    if params["state"] == "absent":
        return
    if not params["gpg_verify"] and not params["allow_insecure"]:
        raise FlatpakError("gpg_verify=false turns off signature checks; confirm with allow_insecure=true")
    if params["gpg_verify"] is False and params["gpg_key"]:
        raise FlatpakError("gpg_key is useless with gpg_verify=false")
    if params["url"] is not None and not params["url"].startswith(("http://", "https://", "file://", "oci+http")):
        raise FlatpakError("url %r is not an http(s):// or file:// URL" % params["url"])
    if params["priority"] is not None and params["priority"] < 0:
        raise FlatpakError("priority is 0 or more")
    if params["filter"] is not None:
        if not os.path.isabs(params["filter"]):
            raise FlatpakError("filter is the absolute path of a filter file on the host")
        if not os.path.isfile(host.path(params["filter"])):
            raise FlatpakError("filter file %s does not exist" % params["filter"])
    if params["collection_id"] is not None and not is_valid_id(params["collection_id"]):
        raise FlatpakError(
            "collection_id %r is not a valid collection ID (reverse DNS, like org.flathub.Stable)" % params["collection_id"]
        )
    if params["collection_id"] and not params["gpg_verify"]:
        raise FlatpakError("a collection ID needs GPG verification (flatpak refuses it with gpg_verify=false)")
    location = params["flatpakrepo_url"]
    if location:
        if not (location.startswith(("http://", "https://", "file://")) or os.path.isabs(location)):
            raise FlatpakError("flatpakrepo_url is an http(s):// or file:// URL or an absolute path")
        if key_from_plain_http(params) and not params["allow_insecure"]:
            raise FlatpakError(
                "flatpakrepo_url %s is plain HTTP and its GPGKey would become the remote's trust anchor, which anyone on "
                "the path can swap; use https://, give gpg_key yourself, or confirm with allow_insecure=true" % location
            )


def desired_remote(params: dict, host) -> tuple:
    """The remote as the options describe it, with the .flatpakrepo and the key read: (desired, key bytes, .flatpakrepo
    text); (None, None, None) for state=absent."""
    check_options(params, host)
    if params["state"] == "absent":
        return None, None, None
    repo = repo_text = None
    if params["flatpakrepo_url"]:
        try:
            repo_text = host.fetch(params["flatpakrepo_url"], MAX_READ).decode("utf-8")
        except (OSError, ValueError) as exc:
            raise FlatpakError("cannot read the .flatpakrepo %s: %s" % (params["flatpakrepo_url"], exc)) from None
        repo = parse_flatpakrepo(repo_text)
    repo = repo or {}
    key = read_key(host, params["gpg_key"]) if params["gpg_key"] else repo.get("gpg_key")
    if not params["gpg_verify"]:
        key = None
    desired = {
        "url": params["url"] or repo.get("url"),
        "title": params["title"] if params["title"] is not None else repo.get("title"),
        "comment": params["comment"] if params["comment"] is not None else repo.get("comment"),
        "priority": params["priority"],
        "filter": False if params["no_filter"] else params["filter"],
        "collection_id": (params["collection_id"] or repo.get("collection_id")) if params["gpg_verify"] else None,
        "enabled": params["enabled"],
        "gpg_verify": params["gpg_verify"],
        "gpg_keys": openpgp.key_fingerprints(key) if key else [],
    }
    return desired, key, repo_text


def temp_file(data: bytes, suffix: str) -> str:
    """A private file of root's (mkstemp: new, 0600, in a sticky /tmp) made readable for flatpak running as another
    user: the mode is set on the descriptor, and the data is a public key or a .flatpakrepo."""
    fd, path = tempfile.mkstemp(prefix="immutable-hosts-flatpak-", suffix=suffix)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o644)
        handle.write(data)
    return path


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
    **installation.COMMON_ARGUMENT_SPEC,
)


class RemoteUnit:
    """``immutable.hosts.flatpak_remote``: one remote of one installation, reconciled in place."""

    ARGUMENT_SPEC = ARGUMENT_SPEC
    MODULE_OPTIONS = dict(mutually_exclusive=[("url", "flatpakrepo_url"), ("filter", "no_filter")])

    def desired(self, params: dict, host) -> dict:
        place = installation.choose(params, host)
        remote, key, repo_text = desired_remote(params, host)
        if key_from_plain_http(params):
            host.warn(
                "the GPG key of remote %s comes from %s over plain HTTP (allow_insecure=true)"
                % (params["name"], params["flatpakrepo_url"])
            )
        return {"place": place, "name": params["name"], "state": params["state"], "remote": remote, "key": key, "repo": repo_text}

    def read(self, host, desired: dict) -> tuple:
        where = installation.Installation(host, desired["place"])
        where.require_flatpak()
        current = listed(where).get(desired["name"])
        keyring = None
        if current is not None:
            data = where.read_file("repo/%s.trustedkeys.gpg" % desired["name"])
            keyring = openpgp.key_fingerprints(data) if data else []
        return current, keyring

    def plan(self, current: tuple, desired: dict) -> Plan:
        remote, keyring = current
        if remote is None and desired["state"] == "present" and not desired["remote"]["url"]:
            raise FlatpakError("remote %s does not exist; adding it needs url or flatpakrepo_url" % desired["name"])
        planned = plan_remote(remote, keyring, desired["remote"], desired["state"])
        return Plan(
            changed=planned["changed"],
            diff={"before": planned["before"], "after": planned["after"]},
            actions=planned,
            result={"remote": planned["after"]},
        )

    def report(self, host, plan: Plan, desired: dict) -> None:
        """In check mode, the listing the rest of the run sees is the one this plan would leave."""
        if host.check_mode and plan.changed:
            where = installation.Installation(host, desired["place"])
            where.assume("remotes", assumed_listing(listed(where), desired["name"], plan.actions["after"]))

    def apply(self, host, plan: Plan, desired: dict) -> None:
        where = installation.Installation(host, desired["place"])
        planned, name = plan.actions, desired["name"]
        files = []
        try:
            key_file = temp_file(desired["key"], ".gpg") if planned["import_key"] else None
            files.append(key_file)
            repo_file = None
            if desired["repo"] and planned["action"] == "add":
                repo_file = temp_file(desired["repo"].encode("utf-8"), ".flatpakrepo")
            files.append(repo_file)
            argv = remote_argv(planned, name, where.scope_args, key_file=key_file, repo_file=repo_file)
            try:
                where.run(argv)
            except CommandFailed:
                if planned["action"] == "add":
                    # flatpak keeps a remote whose first summary fetch failed; leave nothing half-added.
                    where.run(["remote-delete", *where.scope_args, "--force", name], check=False)
                raise
        finally:
            where.forget("remotes")
            for path in filter(None, files):
                os.unlink(path)


UNIT = RemoteUnit()
