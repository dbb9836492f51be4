#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: flatpak_override
short_description: Manage Flatpak sandbox overrides (flatpak override) of an app or of all apps
version_added: 0.1.0
description:
  - Manages the permission overrides C(flatpak override) writes for one app or, with O(global=true), for every app
    (filesystems, sockets, devices, shared subsystems, features, environment, D-Bus names and persistent paths).
  - Reads the override keyfile (C(<installation>/overrides/APP), or C(global)) and compares it as data; a change is
    one atomic write of the keyfile, in the format flatpak writes, owned by the installation's user. Entries this
    module has no option for (other D-Bus policies, C([Policy ...]) groups) are kept in V(merge) mode.
  - Runs no flatpak process at all, so a converged host costs none.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.flatpak
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - A Flatpak installation on the host; the module writes the override file itself and runs no flatpak command. Some
    values take effect only with a newer flatpak (unset_environment 1.10.0, the per-app-dev-shm feature 1.11.1, the
    gpg-agent socket 1.14.0, inherit-wayland-socket 1.15.7, the input device 1.15.6, the usb device 1.15.11, the
    host-root filesystem 1.17.0).
options:
  app:
    description: The application ID whose override is managed. Mutually exclusive with O(global).
    type: str
  global:
    description: Manage the override that applies to every app.
    type: bool
    default: false
  mode:
    description:
      - V(merge) sets the given entries and keeps the others (an entry replaces one of the same name, so
        C(home:ro) replaces C(home) and O(nosockets=[x11]) replaces C(x11)); V(exact) makes the override exactly the
        given entries.
    type: str
    choices: [merge, exact]
    default: merge
  state:
    description:
      - V(present) writes the entries; V(absent) removes the given entries, or resets the whole override (like
        C(flatpak override --reset)) when none are given.
    type: str
    choices: [present, absent]
    default: present
  filesystems:
    description: Filesystems to expose, as C(--filesystem) takes them (C(home), C(xdg-download:ro), C(~/src:create), C(/mnt/data:rw)).
    type: list
    elements: str
    default: []
  nofilesystems:
    description: Filesystems to deny (C(--nofilesystem)), without a mode.
    type: list
    elements: str
    default: []
  sockets:
    description: Sockets to expose (C(wayland), C(x11), C(pulseaudio), C(ssh-auth), ...).
    type: list
    elements: str
    default: []
  nosockets:
    description: Sockets to deny.
    type: list
    elements: str
    default: []
  devices:
    description: Devices to expose (C(dri), C(input), C(usb), C(kvm), C(shm), C(all)).
    type: list
    elements: str
    default: []
  nodevices:
    description: Devices to deny.
    type: list
    elements: str
    default: []
  shares:
    description: Subsystems to share with the host (C(network), C(ipc)).
    type: list
    elements: str
    default: []
  unshares:
    description: Subsystems to unshare.
    type: list
    elements: str
    default: []
  features:
    description: Features to allow (C(devel), C(multiarch), C(bluetooth), C(canbus), C(per-app-dev-shm)); C(!feature) disallows one.
    type: list
    elements: str
    default: []
  environment:
    description: Environment variables to set in the sandbox.
    type: dict
    default: {}
  unset_environment:
    description: Environment variables to unset in the sandbox.
    type: list
    elements: str
    default: []
  talk_names:
    description: Session bus names the app may talk to.
    type: list
    elements: str
    default: []
  own_names:
    description: Session bus names the app may own.
    type: list
    elements: str
    default: []
  system_talk_names:
    description: System bus names the app may talk to.
    type: list
    elements: str
    default: []
  persist:
    description: Home directory subpaths made persistent (C(--persist)), relative to the home directory.
    type: list
    elements: str
    default: []
notes:
  - The installation directory is C($FLATPAK_SYSTEM_DIR) or C(/var/lib/flatpak); for a user C($FLATPAK_USER_DIR),
    C($XDG_DATA_HOME/flatpak) or C(~/.local/share/flatpak) (for O(user), always the latter); for a custom installation
    the C(Path) of its C(installations.d) entry.
  - The app does not have to be installed; flatpak applies the override when it is.
  - When root manages another user's override, every directory below the user's home is opened without following
    symbolic links and must belong to the user; a link (such as C(~/.local/share/flatpak) pointing at the system
    installation) or a foreign owner fails the task with a message naming it, and nothing is read or written. The
    file is written as a new file owned by the user, synced and renamed into place.
  - Values are written with GLib's keyfile escapes (a backslash doubled, a leading blank as C(\\s)), as flatpak
    itself writes them; values with line breaks or control characters are refused.
seealso:
  - module: immutable.hosts.flatpak
"""

EXAMPLES = r"""
- name: Firefox sees only Downloads, gets Wayland and no X11
  immutable.hosts.flatpak_override:
    app: org.mozilla.firefox
    filesystems: [xdg-download]
    nofilesystems: [home, host]
    sockets: [wayland]
    nosockets: [x11]
  become: true

- name: Exactly this for every app of alice
  immutable.hosts.flatpak_override:
    global: true
    mode: exact
    environment: {GTK_THEME: Adwaita:dark}
    user: alice
  become: true

- name: Back to the app's own permissions
  immutable.hosts.flatpak_override:
    app: org.mozilla.firefox
    state: absent
  become: true
"""

RETURN = r"""
path:
  description: The override keyfile.
  returned: success
  type: str
  sample: /var/lib/flatpak/overrides/org.mozilla.firefox
override:
  description: The override after the run (predicted in check mode), as data.
  returned: success
  type: dict
  sample: {filesystems: ["!home", xdg-download], sockets: ["!x11", wayland]}
commands:
  description: The commands run, as argument lists (none; the keyfile is written directly).
  returned: always
  type: list
  elements: list
  sample: []
diff:
  description: The override before and after, as data.
  returned: success
  type: dict
  sample: {before: {sockets: [x11]}, after: {sockets: ["!x11", wayland]}}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak._overrides import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
