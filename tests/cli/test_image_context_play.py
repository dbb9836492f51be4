"""immutable.hosts.image_context in a real ansible-playbook run on localhost (where a build context is written): a
first run writes the context, a second changes nothing, a check of a changed document reports the change with its
diff and writes nothing.  The collection is the checkout's tree (`make tree`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TREE = REPO / "build"
IMAGE = "quay.io/fedora/fedora-silverblue@sha256:" + "4f" * 32

PLAY = """
- name: The silverblue group's image
  hosts: local
  gather_facts: false
  tasks:
    - name: Build context
      immutable.hosts.image_context:
        path: "{path}"
        base_image: {image}
        os:
          packages:
            name: "{{{{ packages }}}}"
          kargs:
            - args: [preempt=full]
        flatpak:
          - remotes:
              - name: lab
                url: https://flatpak.example.test/repo/
            apps:
              - name: [org.example.Editor]
                remote: lab
        secrets:
          - name: db-password
            data: s3cret
        labels:
          io.immutable-hosts.source: group silverblue
        lint: false
      register: context

    - name: Result
      ansible.builtin.debug:
        var: context
"""


def play(tmp_path: Path, packages: list, check: bool = False) -> dict:
    if not (TREE / "ansible_collections/immutable/hosts/plugins/modules/image_context.py").exists():
        pytest.skip("no collection tree: run make tree")
    path = tmp_path / "context"
    playbook = tmp_path / "image.yml"
    playbook.write_text(PLAY.format(path=path, image=IMAGE))
    inventory = tmp_path / "inventory.json"
    inventory.write_text(
        json.dumps({"all": {"hosts": {"local": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}})
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    results = tmp_path / "results.jsonl"
    results.unlink(missing_ok=True)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(TREE),
        ANSIBLE_CALLBACK_PLUGINS=str(REPO / "tests/lab/callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="lab_results",
        LAB_RESULTS_FILE=str(results),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_HOME=str(tmp_path / "home"),
    )
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), "--diff"]
    argv += ["-e", json.dumps({"packages": packages})] + (["--check"] if check else [])
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    task = next(r for r in records if r["type"] == "task" and r["task"] == "Build context")
    stats = next(r for r in records if r["type"] == "stats")["hosts"]["local"]
    return {"result": task["result"], "stats": stats, "path": path}


def test_written_once_then_unchanged_and_a_check_writes_nothing(tmp_path):
    first = play(tmp_path, ["htop", "tmux"])
    assert first["result"]["changed"] is True
    containerfile = (first["path"] / "Containerfile").read_text()
    assert 'RUN ["dnf", "-y", "install", "htop", "tmux"]' in containerfile
    assert (first["path"] / "tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml").exists()
    assert [entry["resource"] for entry in first["result"]["runtime"]] == ["podman_secret db-password"]
    assert "s3cret" not in json.dumps(first["result"])  # the secret's data is no_log in the module's options

    again = play(tmp_path, ["htop", "tmux"])
    assert again["result"]["changed"] is False
    assert again["stats"]["changed"] == 0
    assert again["result"]["context_digest"] == first["result"]["context_digest"]

    check = play(tmp_path, ["htop", "tmux", "zsh"], check=True)
    assert check["result"]["changed"] is True
    diffs = check["result"]["diff"]
    assert [d["after_header"] for d in diffs] == [str(first["path"] / "Containerfile")]
    assert '"zsh"' in diffs[0]["after"] and '"zsh"' not in diffs[0]["before"]
    assert (first["path"] / "Containerfile").read_text() == containerfile  # nothing written
