#!/usr/bin/python
# Copyright (c) immutable.hosts contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: python_venv
short_description: Keep a Python virtual environment of root's with requirements from a package index
version_added: 0.3.0
description:
  - Keeps a Python virtual environment at O(path) with O(requirements) installed from O(index_url), for tools an
    image-based host runs without layering anything into the OS (ansible-core for ansible-pull, under C(/var/lib)).
  - Reads the interpreter's version, the environment's C(pyvenv.cfg) and its packages (C(pip list)), then asks pip what
    it would install (C(pip install --dry-run --report -)); pip consults the index only for what is not satisfied
    already, so a converged environment is checked without the network.
  - A virtual environment is tied to the Python minor version it was made with (its scripts and C(site-packages)).
    When the interpreter moved on (an OS update from Python 3.13 to 3.14), the environment is made again for it.
  - All requirements are installed by one C(pip install). An environment made again keeps the old one aside until
    the new one is complete; a new one that cannot be completed is removed and the old one put back, so a failure
    leaves the host as it was.
  - Requirements are only added or moved to a version they allow; packages the environment holds beyond them stay.
  - Root never acts through a path others control; every existing directory on the way to O(path) must be root's,
    not a symbolic link, and not writable by group or others.
extends_documentation_fragment:
  - immutable.hosts.attributes
author:
  - immutable.hosts contributors (@immutable-hosts)
requirements:
  - Python 3.9 or later with its C(venv) module and C(ensurepip) (Fedora's C(python3); Debian's C(python3-venv)).
  - pip 22.2 or later in the environment (C(install --dry-run --report)); ensurepip of Python 3.11 and later brings it.
options:
  path:
    description: The environment's directory, an absolute path below a directory of its own (V(/var/lib/immutable-hosts/pull/venv)).
    type: path
    required: true
  python:
    description: The interpreter the environment is made with and follows.
    type: path
    default: /usr/bin/python3
  requirements:
    description:
      - Requirements as pip takes them on its command line, each project once - V(ansible-core==2.19.4),
        V(ansible-core>=2.19,<2.22), V(requests[socks]). No URLs, paths, options or environment markers.
      - Required with O(state=present).
    type: list
    elements: str
    default: []
  index_url:
    description:
      - The package index (PEP 503 simple API) pip installs from, as C(--index-url). Unset, pip's own configuration
        decides (PyPI by default).
      - Credentials in the URL end up in C(commands) and in the process list; use pip's configuration or a netrc for them.
    type: str
  allow_insecure_index:
    description:
      - Allow an O(index_url) over plain HTTP (other than localhost), or with a certificate pip cannot verify, for an
        index on a network you trust; passed as pip's C(--trusted-host) for the index's host.
    type: bool
    default: false
  state:
    description: V(present) keeps the environment with its requirements; V(absent) removes the directory.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Unlike M(ansible.builtin.pip), it needs no C(packaging) or C(setuptools) for the interpreter running the module,
    it says what pip would install in check mode, and it makes an environment again when the Python under it changed.
seealso:
  - module: ansible.builtin.pip
  - name: The pull role
    description: Uses this module for ansible-core in C(/var/lib/immutable-hosts/pull/venv).
    link: https://github.com/immutable-hosts/immutable.hosts/tree/main/roles/pull
"""

EXAMPLES = r"""
- name: ansible-core for ansible-pull, from the site's package index
  immutable.hosts.python_venv:
    path: /var/lib/immutable-hosts/pull/venv
    requirements:
      - ansible-core>=2.19,<2.20
    index_url: https://pypi.example.com/simple/
  become: true

- name: Remove it
  immutable.hosts.python_venv:
    path: /var/lib/immutable-hosts/pull/venv
    state: absent
  become: true
"""

RETURN = r"""
path:
  description: The environment's directory.
  returned: always
  type: str
  sample: /var/lib/immutable-hosts/pull/venv
action:
  description: What the run did (or would do in check mode) - V(create), V(recreate), V(install), V(remove) - or null.
  returned: always
  type: str
  sample: install
reason:
  description: Why, in words; null when nothing changes.
  returned: always
  type: str
  sample: it was made with Python 3.13.5, the interpreter is Python 3.14.0
python_version:
  description: The interpreter's version (null with O(state=absent)).
  returned: always
  type: str
  sample: 3.13.5
installed:
  description: What the run installed (or would install in check mode), as C(name==version); an environment to make
    lists what its install brought once it ran.
  returned: always
  type: list
  elements: str
  sample: [ansible-core==2.19.4]
packages:
  description: The environment's packages after the run (canonical name to version); in check mode, what they would
    be, and empty for an environment still to make.
  returned: always
  type: dict
  sample: {ansible-core: 2.19.4, jinja2: 3.1.6, pip: 25.1.1}
commands:
  description: The commands run, as argument lists.
  returned: always
  type: list
  elements: list
  sample: [[/usr/bin/python3, -c, "..."], [/var/lib/immutable-hosts/pull/venv/bin/python, -m, pip, list, --format=json]]
diff:
  description: The environment before and after - its Python and its packages as C(name==version) (the requirements
    as given, for an environment still to make in check mode).
  returned: success
  type: dict
  sample:
    before: {state: present, python: 3.13.5, packages: [ansible-core==2.19.3, pip==25.1.1]}
    after: {state: present, python: 3.13.5, packages: [ansible-core==2.19.4, pip==25.1.1]}
"""

from ansible_collections.immutable.hosts.plugins.module_utils.common._payload import compile_once

compile_once()  # first: our imports below then compile once from the AnsiballZ payload (see _payload)

from ansible_collections.immutable.hosts.plugins.module_utils.common._scaffold import run_module
from ansible_collections.immutable.hosts.plugins.module_utils.python._venv import UNIT


def main():
    run_module(UNIT)


if __name__ == "__main__":
    main()
