"""The three flatpak modules against the real flatpak binary, on a tiny GPG-signed repo built offline in tmp.

Isolated through FLATPAK_SYSTEM_DIR / FLATPAK_USER_DIR / FLATPAK_CONFIG_DIR / HOME set in this process's
environment (the modules' runner passes it on); nothing outside tmp_path is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ansible_collections.immutable.hosts.plugins.modules import flatpak as flatpak_module
from ansible_collections.immutable.hosts.plugins.modules import flatpak_override, flatpak_remote
from ansible_collections.immutable.hosts.tests.unit.compat import patch_module_args

TOOLS = ("flatpak", "ostree", "gpg")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in TOOLS) or os.geteuid() != 0 or not os.path.exists("/bin/busybox"),
    reason="needs root, flatpak, ostree, gpg and /bin/busybox",
)


def sh(argv, env):
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "%s: %s" % (" ".join(argv), proc.stderr)
    return proc.stdout


@pytest.fixture
def lab(tmp_path, monkeypatch):
    env = dict(os.environ)
    for key, sub in (
        ("FLATPAK_SYSTEM_DIR", "system"),
        ("FLATPAK_USER_DIR", "user"),
        ("FLATPAK_CONFIG_DIR", "etc"),
        ("HOME", "home"),
        ("XDG_DATA_HOME", "home/.local/share"),
        ("XDG_CACHE_HOME", "home/.cache"),
        ("GNUPGHOME", "gnupg"),
    ):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        env[key] = str(tmp_path / sub)
        monkeypatch.setenv(key, str(tmp_path / sub))
    os.chmod(tmp_path / "gnupg", 0o700)
    sh(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Test <t@test>", "ed25519", "sign", "never"], env)
    fingerprint = sh(["gpg", "--list-keys", "--with-colons"], env).split("fpr:::::::::")[1].split(":")[0]
    (tmp_path / "key.asc").write_text(sh(["gpg", "--export", "-a", fingerprint], env))
    rt = tmp_path / "rt"
    (rt / "files").mkdir(parents=True)
    (rt / "usr/bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", rt / "usr/bin/busybox")
    (rt / "metadata").write_text(
        "[Runtime]\nname=org.test.Platform\nruntime=org.test.Platform/x86_64/1\nsdk=org.test.Platform/x86_64/1\n"
    )
    repo = tmp_path / "repo"
    sign = "--gpg-sign=" + fingerprint
    sh(["ostree", "init", "--repo=%s" % repo, "--mode=archive"], env)
    sh(["flatpak", "build-export", sign, "--runtime", str(repo), str(rt), "1"], env)
    builder = dict(env, FLATPAK_SYSTEM_DIR=str(tmp_path / "builder"))
    sh(["flatpak", "--system", "remote-add", "--no-gpg-verify", "b", "file://%s" % repo], builder)
    sh(["flatpak", "--system", "install", "-y", "--noninteractive", "b", "runtime/org.test.Platform/x86_64/1"], builder)
    for app in ("org.test.Hello", "org.test.Other"):
        build = tmp_path / app
        sh(["flatpak", "build-init", str(build), app, "org.test.Platform", "org.test.Platform", "1"], builder)
        (build / "files/bin").mkdir(parents=True)
        (build / "files/bin/hello").write_text("#!/bin/sh\necho v1\n")
        sh(["flatpak", "build-finish", str(build), "--command=hello"], builder)
        sh(["flatpak", "build-export", sign, str(repo), str(build), "stable"], builder)
    (tmp_path / "filter").write_text("deny *\n")
    # Fedora-like: filtered and disabled
    sh(["flatpak", "--system", "remote-add", "--disable", "--filter=%s" % (tmp_path / "filter"), "--title=Flathub",
        "--gpg-import=%s" % (tmp_path / "key.asc"), "flathub", "file://%s" % repo], env)  # fmt: skip
    return {"env": env, "repo": repo, "tmp": tmp_path, "fingerprint": fingerprint, "builder": builder, "sign": sign}


def call(module, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def converge(module, args, capsys):
    """check mode changes nothing, the run converges, the rerun is a no-op."""
    checked = call(module, dict(args, _ansible_check_mode=True), capsys)
    assert checked.get("failed") is not True, checked
    real = call(module, args, capsys)
    assert real.get("failed") is not True, real
    assert real["changed"] is checked["changed"] and real["diff"] == checked["diff"]
    again = call(module, args, capsys)
    assert again["changed"] is False, again
    return checked, real, again


def test_three_modules_converge_for_real(lab, capsys):
    env = lab["env"]
    remote_args = {"name": "flathub", "url": "file://%s" % lab["repo"], "no_filter": True, "gpg_key": str(lab["tmp"] / "key.asc")}
    before = sh(["flatpak", "--system", "remotes", "--show-disabled", "--columns=name,filter,options"], env)
    checked, real, again = converge(flatpak_remote, remote_args, capsys)
    assert "filtered" in before and checked["changed"] is True
    listing = sh(["flatpak", "--system", "remotes", "--show-disabled", "--columns=name,filter,options"], env)
    assert "disabled" not in listing and "filtered" not in listing and len(again["commands"]) == 1
    assert real["remote"]["gpg_keys"] == [lab["fingerprint"]]

    refs = ["org.test.Hello//stable", "runtime/org.test.Platform/x86_64/1"]
    apps = {"name": refs, "remote": "flathub", "state": "latest", "arch": "x86_64"}
    assert call(flatpak_module, dict(apps, _ansible_check_mode=True), capsys)["changed"] is True
    assert sh(["flatpak", "--system", "list", "--columns=ref"], env) == ""
    checked, real, again = converge(flatpak_module, apps, capsys)
    assert len(again["commands"]) == 2  # list + remote-ls --updates
    installed = sh(["flatpak", "--system", "list", "--columns=ref"], env)
    assert "org.test.Hello/x86_64/stable" in installed and "org.test.Platform/x86_64/1" in installed

    sh(["flatpak", "--system", "install", "-y", "--noninteractive", "flathub", "app/org.test.Other/x86_64/stable"], env)
    exclusive = dict(apps, state="present", exclusive=True)
    checked, real, again = converge(flatpak_module, exclusive, capsys)
    assert real["removed"] == ["app/org.test.Other/x86_64/stable"] and len(again["commands"]) == 1
    assert "org.test.Platform" in sh(["flatpak", "--system", "list", "--columns=ref"], env)

    override = {"app": "org.test.Hello", "filesystems": ["xdg-download:ro"], "nosockets": ["x11"], "environment": {"A": "1"}}
    checked, real, again = converge(flatpak_override, override, capsys)
    shown = sh(["flatpak", "--system", "override", "--show", "org.test.Hello"], env)
    assert "filesystems=xdg-download:ro;" in shown and "sockets=!x11;" in shown and "A=1" in shown
    assert again["commands"] == []
