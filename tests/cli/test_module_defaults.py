"""meta/runtime.yml's action groups in a real ansible-playbook run: ``module_defaults`` for
``group/immutable.hosts.rpm_ostree`` and ``group/immutable.hosts.flatpak`` reach every module of the family and no
other. The modules run on localhost: each fails on the value its group gave it (a negative wait_timeout, an
installation localhost does not have), which shows the value reached the module.  The collection is the checkout's tree (`make tree`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TREE = REPO / "build"

PLAY = """
- name: Defaults for a family of modules
  hosts: local
  gather_facts: false
  module_defaults:
    group/immutable.hosts.rpm_ostree:
      wait_timeout: -1
    group/immutable.hosts.flatpak:
      installation: no-such-installation
  tasks:
    - name: A module of the rpm-ostree family
      immutable.hosts.kargs:
        args: [quiet]
      register: kargs_run
      ignore_errors: true

    - name: A module of the Flatpak family
      immutable.hosts.flatpak_remote:
        name: lab
        url: https://flatpak.example.test/repo/
      register: remote_run
      ignore_errors: true
      check_mode: true

    - name: The group gave each family its options
      ansible.builtin.assert:
        that:
          - kargs_run.msg is search('wait_timeout must be 0 or more seconds')
          - remote_run.msg is search('no-such-installation')
"""


def test_module_defaults_reach_each_family(tmp_path):
    if not (TREE / "ansible_collections/immutable/hosts/meta/runtime.yml").exists():
        pytest.skip("no collection tree: run make tree")
    groups = yaml.safe_load((REPO / "meta/runtime.yml").read_text())["action_groups"]
    modules = {path.stem for path in (REPO / "plugins/modules").glob("*.py")}
    assert set(groups["rpm_ostree"]) | set(groups["flatpak"]) <= modules
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(PLAY)
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps({"all": {"hosts": {"local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(TREE),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        ANSIBLE_NOCOLOR="1",
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "ok=3" in done.stdout and "ignored=2" in done.stdout, done.stdout[-2000:]
