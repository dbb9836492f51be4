#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: quadlet
short_description: Manage Podman Quadlet units, rootless or rootful, through their whole lifecycle
version_added: 0.1.0
description:
  - Renders a Quadlet unit (C(.container), C(.pod), C(.volume), C(.network), C(.kube), C(.image) or C(.build)) from
    structured options, or takes it as raw O(content); validates it with Podman's own Quadlet generator in dry-run
    mode before anything is written; writes it atomically with the right owner and mode; reloads the right systemd
    instance; and starts or restarts the generated service when the content changed.
  - With O(user), the unit lives in the user's C(~/.config/containers/systemd/) and runs under the user's systemd
    instance, reached without a login session (see the notes); without it, in C(/etc/containers/systemd/) under the
    system instance.
  - Rendering is deterministic. Sections come in a fixed order (C([Unit]), the kind's section, C([Quadlet]),
    C([Service]), C([Install])), keys sorted within a section, a list becomes repeated keys, and values are quoted
    where systemd's word splitting needs it. Keys outside podman 5.4's Quadlet key table are refused.
  - O(state=absent) stops the service, removes the file and reloads.
  - The diff is a unified diff of the file. Check mode runs the same reads and the same validation, and changes
    nothing.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - podman 4.4 or later with its Quadlet generator for the kinds container, volume, network and kube; 4.8 or later for
    image, 5.0 for pod, 5.2 for build, 5.3 for the [Quadlet] section. The keys are podman 5.4's; an older generator
    refuses keys it does not know, and the module validates with the host's generator before writing.
  - systemd (systemctl, and a user instance with linger for O(user)); runuser (util-linux) for O(user).
options:
  name:
    description:
      - The unit's base name, without extension; the file is O(name).O(kind).
      - A plain systemd unit name (letters, digits, C(_.:@-)); never a path.
    type: str
    required: true
  kind:
    description: The Quadlet unit type, which is also the file's extension.
    type: str
    choices: [container, pod, volume, network, kube, image, build]
    default: container
  user:
    description:
      - Manage a rootless unit of this user, under C(~/.config/containers/systemd/) and the user's systemd instance.
        The user needs linger (M(immutable.hosts.rootless_user)) for the unit to run without a login session.
      - Unset manages a system unit under C(/etc/containers/systemd/).
    type: str
  state:
    description: V(present) writes the unit; V(absent) stops its service, removes the file and reloads.
    type: str
    choices: [present, absent]
    default: present
  enabled:
    description:
      - Whether the unit starts at boot (system) or when the user's instance starts (user). Generated units cannot be
        enabled with C(systemctl enable); Quadlet enables them through the C([Install]) section, so V(true) adds
        C(WantedBy=default.target) (user) or C(WantedBy=multi-user.target) (system) unless O(install) names a target,
        and V(false) refuses an O(install) section.
      - Unset leaves the C([Install]) section as O(install) gives it.
    type: bool
  started:
    description:
      - V(true) starts the generated service when it is not running; V(false) stops it.
      - Unset means V(true), except for O(kind=build), whose service runs a build and exits.
    type: bool
  restart_on_change:
    description: Restart a running service when the unit's content changed.
    type: bool
    default: true
  validate:
    description:
      - Validate the candidate unit with Podman's Quadlet generator (C(quadlet -dryrun), with C(-user) for user units)
        before writing it, when the generator is installed (C(/usr/libexec/podman/quadlet) or the systemd generator
        links). A rejected unit fails the task with the generator's own message, and nothing is written.
      - Without the generator the unit is checked against the key table only; RV(validated) says which happened.
    type: bool
    default: true
  content:
    description:
      - The whole unit file as text, instead of the structured options. It must parse, contain the kind's section and
        use podman 5.4 Quadlet keys.
      - Mutually exclusive with the section options and O(enabled).
    type: str
  container:
    description:
      - The C([Container]) section (O(kind=container)), as snake_case options mapped to Quadlet keys, for example
        C(image) → C(Image), C(publish_port) → C(PublishPort), C(podman_args) → C(PodmanArgs). The Quadlet key itself
        (C(PublishPort)) is accepted too.
      - A list renders as repeated keys. C(environment), C(label), C(annotation), C(sysctl) and C(log_opt) also take
        a mapping, rendered as C(KEY=VALUE) entries sorted by key.
      - For C(exec), C(podman_args), C(global_args) and the other keys Podman splits into words, a string is written
        as given and a list is one argument per item, quoted as needed.
      - C(%) starts a systemd specifier (C(%h), C(%t)); write C(%%) for a literal percent sign.
    type: dict
  pod:
    description: The C([Pod]) section (O(kind=pod)), as for O(container).
    type: dict
  volume:
    description: The C([Volume]) section (O(kind=volume)), as for O(container).
    type: dict
  network:
    description: The C([Network]) section (O(kind=network)), as for O(container); C(options) also takes a mapping.
    type: dict
  kube:
    description: The C([Kube]) section (O(kind=kube)), as for O(container).
    type: dict
  image:
    description: The C([Image]) section (O(kind=image)), as for O(container).
    type: dict
  build:
    description: The C([Build]) section (O(kind=build)), as for O(container).
    type: dict
  quadlet:
    description: The C([Quadlet]) section, for example C(default_dependencies=false).
    type: dict
  unit:
    description:
      - The C([Unit]) section, passed to the generated service. Keys in snake_case (C(description), C(after)) or in
        systemd's spelling (C(Description)); values written as given.
    type: dict
  service:
    description: The C([Service]) section, passed to the generated service, as for O(unit).
    type: dict
  install:
    description: The C([Install]) section (C(wanted_by), C(required_by), C(upheld_by), C(alias), C(also), C(default_instance)).
    type: dict
notes:
  - Requires C(become=true) for system units and for another user's units; a user may manage their own units
    without it.
  - The user's instance is reached as C(runuser -u USER -- env XDG_RUNTIME_DIR=/run/user/UID
    DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/UID/bus systemctl --user ...) (or plain C(systemctl --user) when the
    module already runs as that user). This talks to the manager's private socket, so it works over SSH without a
    login session, without a D-Bus session bus and without systemd-machined; it needs the user's instance to be
    running, which linger provides. When linger is on but the instance is not up yet, the module starts
    C(user@UID.service) and waits for it.
  - Before a service of a rootless user starts, the module makes that user's Podman namespace (C(podman unshare
    true) as the user). The first Podman process of a user makes it and moves its pause process into a scope of its
    own, and when that first process is the service's own C(podman run), systemd can fail the service (result
    C(protocol)). At boot no module runs first and a user's containers start together and race the same way, so give
    units that must come back after a reboot C(Restart=on-failure) (the C(service) option C(restart=on-failure)).
  - Secrets belong in Podman secrets referenced by name (C(secret)); environment values appear in the diff.
    Use the task's C(no_log) when a value must not be shown.
  - Keys that only podman newer than 5.4 knows are refused; pass their command-line flags through C(podman_args).
  - When root manages another user's unit, every directory below the user's home is opened without following
    symbolic links and must belong to the user, and the unit file must be a regular file of the user's; a link or
    a foreign owner anywhere on the way fails the task with a message naming it, and nothing is read or written.
    The file is written as a new file owned by the user (owner and mode set on its descriptor), synced and renamed
    into place, so a power cut leaves the old unit or the new one. A sibling unit that is a link is left out of the
    generator's validation, with a warning.
  - A unit whose generated service name is already provided by another unit (C(name=sshd) next to
    C(sshd.service), or a Quadlet unit of the same name in another directory) is refused rather than shadowing it;
    so is a masked service name.
  - Values reach systemd as written. It expands its specifiers in them (C(%h) is the home directory, C(%U) the
    uid, as in a volume C(%h/data:/data)) and, in the command line Quadlet generates, environment variables
    written C(${NAME}) (or C($NAME) as a word of its own). Write C(%%) for a literal C(%) and C($$) for a literal
    C($). A C(%) that starts no specifier is refused, since systemd would refuse the generated service.
seealso:
  - module: immutable.hosts.rootless_user
  - name: podman-systemd.unit(5)
    description: The Quadlet unit format.
    link: https://docs.podman.io/en/latest/markdown/podman-systemd.unit.5.html
"""

EXAMPLES = r"""
- name: A rootless web server that keeps running after logout
  immutable.hosts.quadlet:
    name: web
    user: core
    container:
      image: quay.io/fedora/httpd-24:latest
      publish_port: ["8080:8080"]
      volume: ["web-data.volume:/var/www:Z"]
      environment:
        TZ: Europe/Berlin
      auto_update: registry
      podman_args: ["--stop-timeout=5"]
    unit:
      description: Web server
    service:
      restart: always
    enabled: true
  become: true

- name: The named volume it uses
  immutable.hosts.quadlet:
    name: web-data
    kind: volume
    user: core
    volume:
      label: {app: web}
  become: true

- name: A system-wide pod from raw content
  immutable.hosts.quadlet:
    name: monitoring
    kind: pod
    content: |
      [Pod]
      PublishPort=9090:9090
      [Install]
      WantedBy=multi-user.target
  become: true

- name: Remove it again
  immutable.hosts.quadlet:
    name: web
    user: core
    state: absent
  become: true
"""

RETURN = r"""
name:
  description: The unit's base name.
  returned: always
  type: str
  sample: web
unit:
  description: The Quadlet file's name.
  returned: always
  type: str
  sample: web.container
path:
  description: The Quadlet file's path.
  returned: always
  type: str
  sample: /var/home/core/.config/containers/systemd/web.container
service:
  description: The service the generator makes of the unit.
  returned: always
  type: str
  sample: web.service
scope:
  description: V(user) or V(system).
  returned: always
  type: str
  sample: user
user:
  description: The owner of a rootless unit, null for a system unit.
  returned: always
  type: str
  sample: core
quadlet_dir:
  description: The directory holding the unit.
  returned: always
  type: str
  sample: /var/home/core/.config/containers/systemd
validated:
  description: Whether the Quadlet generator checked the new content (false when it is not installed, or nothing changed).
  returned: always
  type: bool
  sample: true
generator:
  description: The Quadlet generator used for validation, or null.
  returned: always
  type: str
  sample: /usr/libexec/podman/quadlet
actions:
  description: What the run did (predicted in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: [write, daemon-reload, restart]
active:
  description: Whether the service is running after the run (predicted in check mode).
  returned: always
  type: bool
  sample: true
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/libexec/podman/quadlet, -dryrun, -user], [/usr/sbin/runuser, -u, core, --, env, ..., daemon-reload]]
diff:
  description: A unified diff of the file, plus owner and mode when they change.
  returned: success
  type: list
  elements: dict
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.podman._quadlet import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
