"""One harness for the bad-input table: every module runs against a host laid out under a temporary directory, whose
tools answer only what a module reads.  A case passes when the module fails with the expected message, ran nothing
but reads, and left every file of the host as it was (content, mode and owner)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from pathlib import Path

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.modules import (
    deployment,
    flatpak,
    flatpak_override,
    flatpak_remote,
    host_state,
    kargs,
    ostree_facts,
    podman_secret,
    quadlet,
    rebase,
    rootless_user,
    rpm_ostree_packages,
    update_policy,
)
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import (
    FIXTURES,
    Tools,
    fixture_text,
    make_sysroot,
    run_unit,
)

MODULES = {
    "deployment": deployment,
    "flatpak": flatpak,
    "flatpak_override": flatpak_override,
    "flatpak_remote": flatpak_remote,
    "host_state": host_state,
    "kargs": kargs,
    "ostree_facts": ostree_facts,
    "podman_secret": podman_secret,
    "quadlet": quadlet,
    "rebase": rebase,
    "rootless_user": rootless_user,
    "rpm_ostree_packages": rpm_ostree_packages,
    "update_policy": update_policy,
}
BOOTED = "9412245c1880a155cf9c23a49234194f26e3a8b7e847e7636cf65aaee373c7c1"
FLATPAK_LIST = (
    "flatpak list --system --columns=application:f,branch:f,arch:f,origin:f,ref:f,active:f,runtime:f,installation:f,options:f"
)
FLATPAK_REMOTES = (
    "flatpak remotes --system --show-disabled --columns=name:f,url:f,title:f,comment:f,priority:f,filter:f,collection:f,options:f"
)
SHOW = "systemctl show --property=LoadState,ActiveState,SubState,NeedDaemonReload,FragmentPath,SourcePath "
NOT_FOUND = "LoadState=not-found\nActiveState=inactive\nSubState=dead\nNeedDaemonReload=no\nFragmentPath=\nSourcePath=\n"

# What the host answers: reads only.  A command outside this table fails the case (the module acted).
READS = {
    "rpm-ostree status --json": (0, fixture_text("rpm-ostree-status-plain-silverblue.json"), ""),
    "rpm-ostree kargs": (0, "root=UUID=6f3b rw rhgb quiet\n", ""),
    "bootc status --format=json": (0, fixture_text("bootc-status-container-host.json"), ""),
    "systemctl is-enabled rpm-ostreed-automatic.timer": (1, "disabled\n", ""),
    FLATPAK_LIST: (0, (FIXTURES / "flatpak/1.16.6/list-system.txt").read_text(), ""),
    FLATPAK_REMOTES: (0, (FIXTURES / "flatpak/1.16.6/remotes-system.txt").read_text(), ""),
    SHOW + "web.service": (0, NOT_FOUND, ""),
}


def tree(root: Path) -> dict:
    """Every file and directory below ``root`` with its content (or link target), mode and owner."""
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            what = "-> " + os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            what = path.read_bytes()
        else:
            what = "dir"
        state[str(path.relative_to(root))] = (what, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
    return state


class BadInputHost:
    """A host under ``root``: an OSTree sysroot, a Flatpak system installation, Quadlet and subid files, a user."""

    def __init__(self, root: Path, capsys):
        self.root = root
        self.capsys = capsys
        make_sysroot(root, [(BOOTED, 0, "root=UUID=6f3b rw rhgb quiet")])
        (root / "etc").mkdir(exist_ok=True)
        (root / "etc/rpm-ostreed.conf").write_text("[Daemon]\nAutomaticUpdatePolicy=none\n")
        (root / "etc/containers/systemd").mkdir(parents=True)
        (root / "etc/subuid").write_text("core:100000:65536\n")
        (root / "etc/subgid").write_text("core:100000:65536\n")
        (root / "var/lib/systemd/linger").mkdir(parents=True)
        installation = root / "var/lib/flatpak"
        (installation / "overrides").mkdir(parents=True)
        (installation / "repo").mkdir()
        shutil.copy(FIXTURES / "flatpak/1.16.6/override-file.keyfile", installation / "overrides/org.test.Hello")
        home = root / "home/core"
        (home / ".config/containers/systemd").mkdir(parents=True)
        (home / ".config/containers/systemd/web.container").write_text("[Container]\nImage=a.io/b:c\n")
        if os.geteuid() == 0:
            for path in [home, *home.rglob("*")]:
                os.chown(path, 1000, 1000)
        (root / "run/user/1000/systemd").mkdir(parents=True)
        (root / "run/user/1000/systemd/private").write_text("")
        self.core = pwd.struct_passwd(("core", "x", 1000, 1000, "", "/home/core", "/bin/bash"))
        self.tools = Tools(dict(READS), present=("rpm-ostree", "ostree", "systemctl", "flatpak", "runuser", "bootc"))

    def run(self, module: str, args: dict) -> dict:
        host = Host(runner=self.tools.runner(), root=str(self.root), passwd={"core": self.core}, euid=0, environ={})
        return run_unit(MODULES[module].UNIT, args, host, self.capsys)


def read_only(calls: list) -> list:
    """The calls that were not reads (must be none)."""
    return [call for call in calls if call not in READS]
