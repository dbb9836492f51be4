#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: flatpak
short_description: Install, update and remove Flatpak apps and runtimes by exact ref
version_added: 0.1.0
description:
  - Makes Flatpak refs present, absent or at the remote's latest commit, in the system installation, a user's
    installation or a custom one; with O(exclusive=true) the installed apps are exactly the listed ones.
  - Matching is exact on ID, arch, branch (when given) and origin remote; the same ID on another branch, arch or
    remote does not count (C(community.general.flatpak) matches a case-insensitive substring of C(flatpak list)).
  - Reads C(flatpak list --columns=...) once; O(state=latest) also reads C(flatpak remote-ls --updates) for the
    remote, so the decision never depends on flatpak's English output. A converged host costs one flatpak process
    (two with O(state=latest)), however many refs are listed.
  - All missing, outdated and wrong-origin refs go into one C(flatpak install) call (C(--or-update),
    C(--reinstall) for refs installed from another remote); all removals into one C(flatpak uninstall) call.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.flatpak
author:
  - immutable.hosts contributors (@immutable-hosts)
options:
  name:
    description:
      - Refs, each C(ID), C(ID//BRANCH), C(ID/ARCH/BRANCH), C(app/ID/ARCH/BRANCH) or C(runtime/ID/ARCH/BRANCH).
      - Without a branch any installed branch matches, and flatpak installs the remote's default branch (it fails
        when the remote has several and none is the default; then give the branch).
    type: list
    elements: str
    required: true
  remote:
    description:
      - The remote to install from and that installed refs must come from. Required for V(present) and V(latest);
        with V(absent), only refs from this remote are removed when given.
    type: str
  state:
    description:
      - V(present) installs missing refs; V(latest) also updates installed refs that have a newer commit on the
        remote; V(absent) removes them.
    type: str
    choices: [present, absent, latest]
    default: present
  exclusive:
    description:
      - With V(present) or V(latest), uninstall every other app of the installation (apps only, whatever their
        remote; runtimes stay, see O(uninstall_unused)).
    type: bool
    default: false
  arch:
    description: Arch of refs that do not name one. Defaults to the host's (C(x86_64), C(aarch64), ...).
    type: str
  no_related:
    description: Do not install or uninstall related refs (locales, debug info, extensions) with C(--no-related).
    type: bool
    default: false
  uninstall_unused:
    description:
      - After the changes, remove runtimes and extensions nothing uses (C(flatpak uninstall --unused)). Runs only
        when the listing shows a runtime used by no app and not pinned, and reports a change only when a ref really
        went away.
    type: bool
    default: false
notes:
  - A disabled or unknown remote fails before anything is installed, naming the remote (Fedora ships C(flathub)
    disabled; enable it with M(immutable.hosts.flatpak_remote)).
  - As a non-root user without a system D-Bus, flatpak cannot install apps (its parental-controls check needs the
    bus); runtimes still install.
seealso:
  - module: immutable.hosts.flatpak_remote
  - module: immutable.hosts.flatpak_override
"""

EXAMPLES = r"""
- name: Apps from flathub
  immutable.hosts.flatpak:
    name: [org.mozilla.firefox, org.gnome.Calculator, com.github.tchx84.Flatseal]
    remote: flathub
  become: true

- name: Exactly these apps, kept at the latest commit, unused runtimes removed
  immutable.hosts.flatpak:
    name: [org.mozilla.firefox, org.libreoffice.LibreOffice//stable]
    remote: flathub
    state: latest
    exclusive: true
    uninstall_unused: true
  become: true

- name: A runtime on a given branch, for alice only
  immutable.hosts.flatpak:
    name: [runtime/org.freedesktop.Platform/x86_64/24.08]
    remote: flathub
    user: alice
  become: true

- name: No more GIMP, whatever remote it came from
  immutable.hosts.flatpak:
    name: [org.gimp.GIMP]
    state: absent
  become: true
"""

RETURN = r"""
installed:
  description: The install arguments of refs newly installed (or reinstalled from O(remote)).
  returned: success
  type: list
  elements: str
  sample: [org.mozilla.firefox/x86_64/]
updated:
  description: Full refs updated to the remote's latest commit.
  returned: success
  type: list
  elements: str
  sample: [app/org.gnome.Calculator/x86_64/stable]
removed:
  description: Full refs uninstalled, including unused runtimes removed with O(uninstall_unused).
  returned: success
  type: list
  elements: str
  sample: [app/org.gimp.GIMP/x86_64/stable]
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/flatpak, list, --system, "--columns=application:f,branch:f"]]
diff:
  description: Installed refs with their origin before and after (and, for V(latest), the outdated ones).
  returned: success
  type: dict
  sample:
    before: {refs: {app/org.gnome.Calculator/x86_64/stable: flathub}}
    after: {refs: {app/org.gnome.Calculator/x86_64/stable: flathub, org.mozilla.firefox/x86_64/: flathub}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import flatpak
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak_host import COMMON_ARGUMENT_SPEC, read_text, run_module
from ansible_collections.immutable.hosts.plugins.module_utils.runner import CommandFailed


def validate(params):
    arch = params["arch"] or flatpak.host_arch()
    if not flatpak.is_valid_arch(arch):
        raise ValueError("arch %r is not a valid flatpak arch" % arch)
    if not params["name"]:
        raise ValueError("name lists at least one ref")
    wants = flatpak.parse_refs(params["name"], arch)
    if params["remote"] is not None:
        flatpak.validate_remote_name(params["remote"])
    if params["state"] in ("present", "latest") and not params["remote"]:
        raise ValueError("state=%s needs remote, the remote to install from" % params["state"])
    if params["exclusive"] and params["state"] == "absent":
        raise ValueError("exclusive applies to state=present or latest")
    return wants


def require_remote(host, remote):
    """Fail clearly (and before installing anything) when the remote is unknown or disabled."""
    remotes = host.remotes()
    if remote not in remotes:
        known = ", ".join(sorted(remotes)) or "none"
        raise ValueError(
            "remote %s is not configured in this installation (known: %s); add it with flatpak_remote" % (remote, known)
        )
    if not remotes[remote]["enabled"]:
        raise ValueError("remote %s is disabled; enable it with flatpak_remote (enabled: true)" % remote)


def converge(host):
    params = host.module.params
    wants = validate(params)
    remote, state = params["remote"], params["state"]
    host.require_flatpak()
    installed = host.list_refs()
    updates = None
    if state == "latest" and any(flatpak.matches(w, ref, remote) for w in wants for ref in installed):
        try:
            out = host.run(["remote-ls", *host.scope_args, "--updates", flatpak.columns_arg(flatpak.UPDATE_COLUMNS), remote])
        except CommandFailed:
            require_remote(host, remote)
            raise
        updates = flatpak.parse_updates(out.stdout)
    plan = flatpak.plan_apps(installed, wants, state, remote, exclusive=params["exclusive"], updates=updates)
    install = flatpak.install_argv(plan, remote, host.scope_args, params["no_related"]) if remote else None
    uninstall = flatpak.uninstall_argv(plan, host.scope_args, params["no_related"])
    if install and plan["install"]:
        require_remote(host, remote)
    removed = list(plan["uninstall"])
    changed = plan["changed"]
    if not host.module.check_mode:
        if install:
            host.run(install)
        if uninstall:
            host.run(uninstall)
    if params["uninstall_unused"]:
        after = [ref for ref in installed if ref["ref"] in plan["after"]["refs"]]
        pinned = flatpak.pinned_patterns(read_text(host.directory() + "/repo/config") or "")
        keep = [ref["ref"] for ref in installed if any(flatpak.matches(w, ref, None) for w in wants)]
        candidates = flatpak.unused_runtimes(after, pinned, keep)
        if candidates and host.module.check_mode:
            removed += candidates
            changed = True
        elif candidates:
            host.run(["uninstall", *host.scope_args, "--noninteractive", "-y", "--unused"])
            gone = sorted({ref["ref"] for ref in after} - {ref["ref"] for ref in host.list_refs()})
            removed += gone
            changed = changed or bool(gone)
        for ref in removed:
            plan["after"]["refs"].pop(ref, None)
    host.exit(
        changed,
        {"before": plan["before"], "after": plan["after"]},
        installed=plan["install"],
        updated=plan["update"],
        removed=removed,
    )


def main():
    argument_spec = dict(
        name=dict(type="list", elements="str", required=True),
        remote=dict(type="str"),
        state=dict(type="str", choices=["present", "absent", "latest"], default="present"),
        exclusive=dict(type="bool", default=False),
        arch=dict(type="str"),
        no_related=dict(type="bool", default=False),
        uninstall_unused=dict(type="bool", default=False),
    )
    argument_spec.update(COMMON_ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, converge)


if __name__ == "__main__":
    main()
