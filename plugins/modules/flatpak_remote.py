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
    description: Confirms O(gpg_verify=false) is intended.
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

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak_host import (
    COMMON_ARGUMENT_SPEC,
    read_bytes,
    run_module,
)
from ansible_collections.immutable.hosts.plugins.module_utils.runner import CommandFailed

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
    fd, path = tempfile.mkstemp(prefix="immutable-hosts-flatpak-", suffix=suffix)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o644)  # flatpak may run as another user
    return path


def converge(host):
    params = host.module.params
    name = params["name"]
    desired, key, repo_text = validate(params)
    host.require_flatpak()
    remotes = host.remotes()
    current = remotes.get(name)
    keyring = None
    if current is not None:
        data = read_bytes(os.path.join(host.directory(), "repo", "%s.trustedkeys.gpg" % name))
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


def main():
    argument_spec = dict(
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
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("url", "flatpakrepo_url"), ("filter", "no_filter")],
        supports_check_mode=True,
    )
    run_module(module, converge)


if __name__ == "__main__":
    main()
