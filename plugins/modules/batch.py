#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: batch
short_description: Run several immutable.hosts Flatpak, Quadlet and rootless-user calls on a host in one go
version_added: 0.1.0
description:
  - Runs a list of calls of M(immutable.hosts.flatpak_remote), M(immutable.hosts.flatpak),
    M(immutable.hosts.flatpak_override), M(immutable.hosts.rootless_user) and M(immutable.hosts.quadlet) in one Python
    process on the host, in the order given.
  - Each task costs one connection round trip, one Python start and one unpacked module on the host. On a converged
    host that cost is nearly the whole of a drift check, so a fleet check with one batch instead of one task per remote,
    app list, override, user and unit is several times faster. The roles M(immutable.hosts.flatpak) and
    M(immutable.hosts.rootless_podman) use it.
  - Every call runs the very code the standalone module runs, with its arguments validated against that module's own
    argument spec. Check mode, diffs, return values and error messages are the module's own.
  - Every call's arguments are validated before the first call runs, so a mistake in the last call changes nothing.
    A call that fails at run time stops the batch; the calls before it have been applied (as separate tasks before
    a failing task would have been), and the result says which ran, which failed and which did not run.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
options:
  calls:
    description: The calls, run in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      module:
        description:
          - The module to call, by short name or FQCN.
          - One of V(flatpak_remote), V(flatpak), V(flatpak_override), V(rootless_user), V(quadlet).
        type: str
        required: true
      args:
        description: The module's arguments, exactly as the standalone module takes them.
        type: dict
        default: {}
      label:
        description:
          - What the call is called in results, diffs and messages.
          - Defaults to the module's short name and the object it manages, such as C(quadlet web (user core)).
        type: str
notes:
  - The standalone modules' documentation describes each call's arguments and return values.
  - The calls' warnings are the batch's warnings, each prefixed with its call's label.
seealso:
  - module: immutable.hosts.flatpak_remote
  - module: immutable.hosts.flatpak
  - module: immutable.hosts.flatpak_override
  - module: immutable.hosts.rootless_user
  - module: immutable.hosts.quadlet
"""

EXAMPLES = r"""
- name: Flathub, two apps and an override, in one task
  immutable.hosts.batch:
    calls:
      - module: flatpak_remote
        args:
          name: flathub
          flatpakrepo_url: https://dl.flathub.org/repo/flathub.flatpakrepo
      - module: flatpak
        args:
          name: [org.mozilla.firefox, org.gnome.Calculator]
          remote: flathub
      - module: flatpak_override
        args:
          app: org.mozilla.firefox
          mode: exact
          sockets: [wayland]

- name: A rootless user and the container it runs
  immutable.hosts.batch:
    calls:
      - module: immutable.hosts.rootless_user
        args:
          name: core
      - module: immutable.hosts.quadlet
        label: web
        args:
          name: web
          user: core
          container:
            image: quay.io/example/web:1.4
            publish_port: ["8080:8080"]
          enabled: true
"""

RETURN = r"""
results:
  description:
    - One result per call that ran, in order, each as the standalone module returns it, plus C(module) (the FQCN),
      C(item) (the call's label) and C(invocation).
    - A failed batch lists the calls that ran, the failed one last.
  returned: always
  type: list
  elements: dict
  sample:
    - changed: true
      module: immutable.hosts.quadlet
      item: quadlet web (user core)
      actions: [write, daemon-reload, start]
      active: true
changed:
  description: Whether any call changed (or, in check mode, would change) the host.
  returned: always
  type: bool
diff:
  description: The diffs of the calls that changed, each headed by its call's label.
  returned: always
  type: list
  elements: dict
commands:
  description: Every command the calls ran, in order, as argument lists.
  returned: always
  type: list
  elements: list
skipped_calls:
  description: The labels of the calls that did not run because an earlier call failed.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.immutable.hosts.plugins.module_utils import batch


def main():
    module = AnsibleModule(
        argument_spec=dict(
            calls=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    module=dict(type="str", required=True),
                    args=dict(type="dict", default={}),
                    label=dict(type="str"),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    try:
        result = batch.run(module, module.params["calls"])
    except batch.BatchError as exc:
        module.fail_json(msg=str(exc), changed=False, results=[], commands=[])
    module.no_log_values.update(result.pop("no_log_values"))
    if result.get("failed"):
        result.pop("failed")
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
