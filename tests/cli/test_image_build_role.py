"""playbooks/image_build.yml (the immutable.hosts.image_build role) with a real ansible-playbook: two hosts of one
group, which share a base image, packages, a Flatpak remote and app and a Quadlet unit and differ in a package, an app
and a secret.  The group's context holds what both share; each host's own resources are listed; a second run changes
nothing; a check of a changed inventory reports the Containerfile's diff and writes nothing.  The hosts are never
contacted (local connections that the play does not use: no fact is gathered and no task runs on them)."""

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


def inventory(tmp_path: Path, packages_of_2: list) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    group = {
        "os_image_image": IMAGE,
        "os_image_packages_state": "present",
        "flatpak_remotes": [{"name": "lab", "url": "https://flatpak.example.test/repo/"}],
        "rootless_podman_quadlets": [{"name": "web", "container": {"image": "quay.io/example/web:1"}}],
    }
    hosts = {
        "sb-1": dict(
            local,
            os_image_packages=["htop", "tmux"],
            flatpak_apps=[{"name": ["org.example.Editor"], "remote": "lab"}],
        ),
        "sb-2": dict(
            local,
            os_image_packages=packages_of_2,
            flatpak_apps=[{"name": ["org.example.Editor", "org.example.Viewer"], "remote": "lab"}],
            rootless_podman_secrets=[{"name": "db-password", "data": "s3cret"}],
        ),
    }
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"silverblue": {"hosts": hosts, "vars": group}}))
    return path


def play(tmp_path: Path, packages_of_2: list, check: bool = False) -> dict:
    if not (TREE / "ansible_collections/immutable/hosts/roles/image_build").exists():
        pytest.skip("no collection tree: run make tree")
    results = tmp_path / "results.jsonl"
    results.unlink(missing_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(TREE),
        ANSIBLE_CALLBACK_PLUGINS=str(REPO / "tests/lab/callback_plugins"),
        ANSIBLE_CALLBACKS_ENABLED="lab_results",
        LAB_RESULTS_FILE=str(results),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_HOME=str(tmp_path / "home"),
    )
    context = tmp_path / "context"
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory(tmp_path, packages_of_2))]
    argv += [str(REPO / "playbooks/image_build.yml"), "--diff", "-l", "silverblue"]
    argv += ["-e", json.dumps({"image_build_path": str(context), "image_build_lint": False})]
    argv += ["--check"] if check else []
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    records = [json.loads(line) for line in results.read_text().splitlines()]
    built = [r for r in records if str(r.get("task")).endswith("The build context of what every host's document holds")]
    assert len(built) == 1, records  # once for the play
    summary = {r["host"]: r["result"]["msg"] for r in records if str(r.get("task")).endswith("What stays with each host")}
    stats = next(r for r in records if r["type"] == "stats")["hosts"]
    return {"context": built[0]["result"], "summary": summary, "stats": stats, "path": context, "records": records}


def test_the_group_image_holds_what_its_hosts_share(tmp_path):
    first = play(tmp_path, ["htop", "tmux", "zsh"])
    assert first["context"]["changed"] is True
    containerfile = (first["path"] / "Containerfile").read_text()
    assert "FROM " + IMAGE in containerfile
    assert 'RUN ["dnf", "-y", "install", "htop", "tmux"]' in containerfile
    assert (first["path"] / "tree/etc/flatpak/remotes.d/lab.flatpakrepo").exists()
    assert (first["path"] / "tree/usr/share/containers/systemd/web.container").exists()
    service = (first["path"] / "tree/usr/lib/systemd/system/immutable-hosts-flatpak-install.service").read_text()
    assert "org.example.Editor" in service and "org.example.Viewer" not in service
    assert first["summary"]["sb-1"]["this_host_alone"] == []
    assert first["summary"]["sb-2"]["this_host_alone"] == ["rpm_ostree_packages", "flatpak", "podman_secret db-password"]
    assert "s3cret" not in json.dumps(first["records"])

    again = play(tmp_path, ["htop", "tmux", "zsh"])
    assert again["context"]["changed"] is False
    assert {host: stats["changed"] for host, stats in again["stats"].items()} == {"sb-1": 0, "sb-2": 0}

    # sb-2 drops tmux: the image loses it (sb-1 keeps it layered at runtime)
    check = play(tmp_path, ["htop", "zsh"], check=True)
    assert check["context"]["changed"] is True
    diff = next(d for d in check["context"]["diff"] if d["after_header"].endswith("/Containerfile"))
    assert '"tmux"' in diff["before"] and '"tmux"' not in diff["after"]
    assert (first["path"] / "Containerfile").read_text() == containerfile
    assert check["summary"]["sb-1"]["this_host_alone"] == ["rpm_ostree_packages"]


# --- the command -----------------------------------------------------------------------------------------------------


def test_image_build_command_writes_then_checks(tmp_path, capsys, monkeypatch):
    from immutable_hosts import cli

    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    monkeypatch.setenv("ANSIBLE_LOCAL_TEMP", str(tmp_path / "tmp"))
    monkeypatch.setenv("ANSIBLE_HOME", str(tmp_path / "home"))
    context = tmp_path / "images/silverblue"
    argv = ["image", "build", "-i", str(inventory(tmp_path, ["htop", "tmux"])), "--group", "silverblue"]
    argv += ["--context", str(context), "-e", '{"image_build_lint": false}']
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "written: yes" in out and "context digest: sha256:" in out
    assert "  sb-1: nothing\n  sb-2: flatpak, podman_secret db-password\n" in out
    assert "stays at runtime (no image carries it):\n  nothing\n" in out  # the group shares no secret, user, removal
    containerfile = (context / "Containerfile").read_text()
    assert 'LABEL "io.immutable-hosts.inventory"=' in containerfile
    assert '"io.immutable-hosts.source"="group silverblue"' in containerfile

    assert cli.main([*argv, "--check"]) == 0
    assert "would change: nothing" in capsys.readouterr().out
    assert cli.main(argv) == 0
    assert "written: no change" in capsys.readouterr().out

    inventory(tmp_path, ["htop"])  # sb-2 no longer layers tmux: the image loses it
    assert cli.main([*argv, "--check"]) == 2
    assert "would change: %s" % (context / "Containerfile") in capsys.readouterr().out
    assert (context / "Containerfile").read_text() == containerfile
