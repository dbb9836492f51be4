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
requirements:
  - flatpak 1.5.0 or later (install --or-update; list --columns with the :f modifier).
  - runuser (util-linux) on the host when O(user) names another user.
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

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._apps import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
