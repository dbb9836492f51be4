# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    # The options every rpm-ostree module shares (module_utils/ostree/_reader.py COMMON_ARGUMENT_SPEC).
    DOCUMENTATION = r"""
attributes:
  action_group:
    description: Use C(group/immutable.hosts.rpm_ostree) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - immutable.hosts.rpm_ostree
options:
  wait_timeout:
    description:
      - Seconds to wait while another rpm-ostree transaction runs (GNOME Software, the automatic update timer),
        polling the status, before failing with the busy transaction's name.
    type: int
    default: 600
  bypass_driver:
    description:
      - Act even though an update driver such as Zincati is registered and active. Without it the module fails
        before changing anything.
    type: bool
    default: false
notes:
  - Requires C(become=true); rpm-ostree authorises changes through polkit.
"""
