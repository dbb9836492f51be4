# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # Which installation a flatpak module works on (module_utils/flatpak/_installation.py COMMON_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
attributes:
  action_group:
    description: Use C(group/immutable.hosts.flatpak) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - immutable.hosts.flatpak
options:
  scope:
    description:
      - V(system) for the system-wide installation, V(user) for the per-user one of the user the module runs as
        (or of O(user)). Defaults to V(user) when O(user) is set, else V(system).
    type: str
    choices: [system, user]
  user:
    description:
      - Manage this user's per-user installation. flatpak runs as that user through C(runuser -u USER --), with
        C(HOME), C(USER) and C(LOGNAME) from the passwd entry and C(XDG_RUNTIME_DIR=/run/user/UID) plus its session
        bus when they exist. Needs root (C(become=true)).
    type: str
  installation:
    description: A custom system-wide installation by name (C(/etc/flatpak/installations.d/*.conf)).
    type: str
"""
