#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_state
short_description: Converge a whole immutable host to one document, in one module run
version_added: 0.2.0
description:
  - Takes the whole desired state of one host as one document (the image trust, registry credentials and package
    repositories, the OS image or ref, layered packages and base overrides, kernel arguments, initramfs and update
    policy; Flatpak installations with their remotes, apps and overrides; rootless users with their Podman secrets,
    registry credentials and Quadlet units) and converges it in one process on the host.
  - Every resource is converged by the unit of its own module (M(immutable.hosts.image_policy),
    M(immutable.hosts.registry_auth), M(immutable.hosts.rpm_repo), M(immutable.hosts.rebase),
    M(immutable.hosts.rpm_ostree_packages), M(immutable.hosts.kargs), M(immutable.hosts.initramfs),
    M(immutable.hosts.update_policy), M(immutable.hosts.rootless_user), M(immutable.hosts.flatpak_remote), M(immutable.hosts.flatpak),
    M(immutable.hosts.flatpak_override), M(immutable.hosts.podman_secret), M(immutable.hosts.quadlet)), exactly as
    that module would, with the same check mode and diff. Each tool's state is read once for all of them
    (C(rpm-ostree status), C(flatpak list) and C(flatpak remotes) of an installation, C(systemctl show) of a unit).
  - The whole document is checked before anything runs; a resource that fails stops the run there, and the result
    says which one and what ran before.
  - "Order: the OS (trust, registry credentials, repositories, rebase, packages, kernel arguments, initramfs, update
    policy), the users, the Flatpak installations (remotes, apps, overrides), the secrets and the users' registry
    credentials, the Quadlet units. A rebase onto an ostree ref layers the wanted packages
    in the same rpm-ostree transaction. A secret that changed restarts the running services of the units that read it
    (C(Secret=)), unless their unit changed too."
  - The module never reboots. C(reboot_required) and C(reboot_reasons) say whether the next boot differs from the
    running system and why; the M(immutable.hosts.os_image) role reboots once when they say so.
  - The document is also what an image build compiles into a bootable container image, so one inventory describes
    a host both ways.
extends_documentation_fragment:
  - immutable.hosts.attributes
  - immutable.hosts.host_document
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - For each part of the document, what its module needs (see each module's requirements), for example rpm-ostree
    2022.16 or later, or bootc 0.1.13 or later, to follow a container image; flatpak 1.5.0 or later for C(flatpak);
    podman 4.4 or later with Quadlet for C(quadlets) and 4.7 or later for C(secrets); loginctl for C(users).
options:
  facts:
    description:
      - Return C(ansible_facts.ostree), as M(immutable.hosts.ostree_facts) gathers them, read after the run from the same
        reads (in check mode, the host as it is).
    type: bool
    default: false
notes:
  - Requires C(become=true).
  - A resource of a user that the same document creates (C(users[].create)) is checked when its turn comes; in check
    mode it is reported as changed, to be set up once the user exists.
seealso:
  - module: immutable.hosts.ostree_facts
  - name: The roles os_image, flatpak, rootless_podman and workstation
    description: They build this document from their variables and call this module once per host.
    link: https://github.com/immutable-hosts/immutable.hosts/tree/main/roles
"""

EXAMPLES = r"""
- name: One workstation, whole
  immutable.hosts.host_state:
    os:
      rebase:
        ref: fedora:fedora/42/x86_64/silverblue
      packages:
        name: [htop, tmux]
      kargs:
        - args: [preempt=full]
      update_policy:
        policy: stage
        timer_enabled: true
    flatpak:
      - scope: system
        remotes:
          - name: flathub
            flatpakrepo_url: https://dl.flathub.org/repo/flathub.flatpakrepo
        apps:
          - name: [org.mozilla.firefox, org.gnome.Calculator]
            remote: flathub
        overrides:
          - app: org.mozilla.firefox
            sockets: [wayland]
            nosockets: [x11]
    users:
      - name: core
        secrets:
          - name: db-password
            data: "{{ vault_db_password }}"
        quadlets:
          - name: db
            container:
              image: docker.io/library/postgres:17
              secret: [db-password]
            enabled: true
    facts: true
  become: true
  register: host

- name: Reboot once when the next boot differs
  ansible.builtin.reboot:
  when: host.reboot_required
  become: true

- name: A signed image from a private registry, with a COPR package and a vendor's
  immutable.hosts.host_state:
    os:
      trust:
        - type: reject  # the global default: anything not trusted below
        - scope: ""
          transport: containers-storage
          type: insecureAcceptAnything
        - scope: registry.example.com/os
          key: "{{ lookup('ansible.builtin.file', 'os-signing.pub') }}"
      registry_auth:
        - registry: registry.example.com
          username: robot
          password: "{{ vault_registry_password }}"
      repos:
        - copr: atim/starship
        - name: tailscale-stable
          baseurl: ["https://pkgs.tailscale.com/stable/fedora/$basearch"]
          gpgkey: ["https://pkgs.tailscale.com/stable/fedora/repo.gpg"]
      rebase:
        image: registry.example.com/os/silverblue:42
      packages:
        name: [starship, tailscale]
      initramfs:
        regenerate: true
        etc: [/etc/crypttab]
  become: true
"""

RETURN = r"""
resources:
  description:
    - One entry per resource, in the order they ran, with what the resource's own module returns (C(changed),
      C(diff), C(commands) and its fields), and C(resource) (a label such as C(flatpak_remote flathub)), C(module)
      (the module whose unit converged it) and C(args) (the options that name it; never a secret).
    - On failure, the entries up to and including the failed one (C(failed), C(msg)).
  returned: always
  type: list
  elements: dict
  sample:
    - resource: flatpak_remote flathub
      module: immutable.hosts.flatpak_remote
      args: {name: flathub, scope: system}
      changed: false
      commands: []
reboot_required:
  description: Whether the next boot differs from the running system (predicted in check mode).
  returned: when the document has C(os) or C(facts)
  type: bool
  sample: true
reboot_reasons:
  description: Why, in the words of M(immutable.hosts.ostree_facts) (C(origin-changed), C(layering-changed)...).
  returned: when the document has C(os) or C(facts)
  type: list
  elements: str
  sample: [origin-changed, layering-changed]
ansible_facts:
  description: C(ostree), the facts of M(immutable.hosts.ostree_facts), hardware included.
  returned: with O(facts=true)
  type: dict
  sample: {ostree: {is_ostree: true, backend: rpm-ostree, reboot_required: false}}
check_mode:
  description: Whether the run was a check (a play's C(check_mode=true) included, which C(ansible_check_mode) does not show).
  returned: success
  type: bool
  sample: false
commands:
  description: Every command run, as argument lists, in order.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/rpm-ostree, status, --json]]
diff:
  description: The diffs of every changed resource, each headed by its resource (or its file).
  returned: changed
  type: list
  elements: dict
  sample: [{before_header: kargs, after_header: kargs, before: {kargs: [rw]}, after: {kargs: [rw, preempt=full]}}]
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils._host_state import UNIT
from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
