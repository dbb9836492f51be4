"""What a derived build runs in the lab's OS images (dnf, systemctl and bootc simulated, busybox real), run in a
chroot of an image tree as a build's RUN step runs them; and the simulators' import of an image's layers (whiteouts,
/etc to /usr/etc, the package list the tree records, links that would leave the tree).

The scripts need root (chroot) and busybox-static on the machine.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from immutable_hosts.lab import ostree_content
from immutable_hosts.lab.sim import HOSTLIB

needs_chroot = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/bin/busybox").is_file(), reason="needs root (chroot) and busybox-static"
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """An x86_64 Fedora 42 image tree as the lab builds it, with its build tools."""
    root = tmp_path / "tree"
    pkgs = ostree_content.base_packages("42", "x86_64", "silverblue")
    ostree_content._write_tree(root, "42", "x86_64", "silverblue", "42.20250416.0", pkgs)
    ostree_content.add_build_tools(root, "42", "x86_64")
    (root / "etc").mkdir()
    return root  # no /tmp: the lab's images have none, and dnf must not need one


def run(tree: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("chroot") or "/usr/sbin/chroot", str(tree), *argv],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin", "LC_ALL": "C"},
    )


def recorded(tree: Path, name: str) -> str | None:
    path = tree / "usr/share/doc" / name / "lab-package"
    return path.read_text().strip() if path.is_file() else None


def repo_file(tree: Path, name: str, text: str) -> None:
    directory = tree / "etc/yum.repos.d"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.repo").write_text(text)


@needs_chroot
def test_dnf_installs_from_fedora_and_records_the_package(tree: Path) -> None:
    done = run(tree, "dnf", "-y", "install", "htop", "tmux")
    assert done.returncode == 0, done.stderr
    assert recorded(tree, "htop") == ostree_content.repo_packages("42", "x86_64")["htop"]
    assert recorded(tree, "tmux") == ostree_content.repo_packages("42", "x86_64")["tmux"]
    again = run(tree, "dnf", "install", "-y", "htop")
    assert again.returncode == 0
    assert "is already installed" in again.stdout and "Nothing to do." in again.stdout


@needs_chroot
def test_dnf_refuses_unknown_names_and_changes_nothing(tree: Path) -> None:
    done = run(tree, "dnf", "-y", "install", "htop", "no-such-package")
    assert done.returncode == 1
    assert "No match for argument: no-such-package" in done.stderr
    assert recorded(tree, "htop") is None


@needs_chroot
def test_dnf_without_assumeyes_aborts(tree: Path) -> None:
    done = run(tree, "dnf", "install", "htop")
    assert done.returncode == 1 and "Operation aborted" in done.stdout
    assert recorded(tree, "htop") is None


@needs_chroot
def test_dnf_sees_another_repository_only_while_a_repo_file_enables_it(tree: Path) -> None:
    assert run(tree, "dnf", "-y", "install", "tailscale").returncode == 1
    base = "http://images.lab:8088/repos/lab-extras/fedora-$releasever/$basearch/"
    repo_file(tree, "extras", f"[lab-extras]\nbaseurl={base}\nenabled=0\n")
    assert run(tree, "dnf", "-y", "install", "tailscale").returncode == 1
    repo_file(tree, "extras", f"[lab-extras]\nbaseurl={base}\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/lab\n")
    done = run(tree, "dnf", "-y", "install", "tailscale")
    assert done.returncode == 0, done.stderr
    assert recorded(tree, "tailscale") == "tailscale-1.76.6-1.x86_64"


@needs_chroot
def test_dnf_refuses_an_unsigned_package_from_a_repository_with_gpgcheck(tree: Path) -> None:
    repo_file(tree, "unsigned", "[lab-unsigned]\nbaseurl=http://images.lab:8088/repos/lab-unsigned/$basearch\ngpgcheck=1\n")
    done = run(tree, "dnf", "-y", "install", "lab-unsigned-tool")
    assert done.returncode == 1
    assert "Signature verification failed" in done.stderr
    assert recorded(tree, "lab-unsigned-tool") is None
    repo_file(tree, "unsigned", "[lab-unsigned]\nbaseurl=http://images.lab:8088/repos/lab-unsigned/$basearch\ngpgcheck=0\n")
    assert run(tree, "dnf", "-y", "install", "lab-unsigned-tool").returncode == 0


@needs_chroot
def test_dnf_removes_base_packages_and_refuses_what_is_not_there(tree: Path) -> None:
    assert recorded(tree, "nano") is not None
    done = run(tree, "dnf", "-y", "remove", "nano")
    assert done.returncode == 0, done.stderr
    assert recorded(tree, "nano") is None
    again = run(tree, "dnf", "-y", "remove", "nano")
    assert again.returncode == 1 and "No packages to remove for argument: nano" in again.stderr
    assert run(tree, "dnf", "clean", "all").returncode == 0


@needs_chroot
def test_systemctl_enables_and_disables_offline_by_the_install_section(tree: Path) -> None:
    units = tree / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    (units / "first.service").write_text("[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n")
    (units / "static.service").write_text("[Service]\nExecStart=/bin/true\n")
    done = run(tree, "systemctl", "enable", "first.service")
    assert done.returncode == 0, done.stderr
    link = tree / "etc/systemd/system/multi-user.target.wants/first.service"
    assert os.readlink(link) == "/usr/lib/systemd/system/first.service"
    assert run(tree, "systemctl", "enable", "missing.service").returncode == 1
    assert "no installation config" in run(tree, "systemctl", "enable", "static.service").stderr
    done = run(tree, "systemctl", "disable", "first.service")
    assert done.returncode == 0 and "Removed" in done.stdout, done.stderr
    assert not os.path.lexists(link)
    assert run(tree, "systemctl", "disable", "first.service").stdout == ""  # nothing left to remove
    assert run(tree, "systemctl", "mask", "first.service").returncode == 1
    assert "does not exist" in run(tree, "systemctl", "disable", "missing.service").stderr


@needs_chroot
def test_bootc_lint_wants_one_kernel_and_kargs_lists(tree: Path) -> None:
    assert run(tree, "bootc", "container", "lint").returncode == 0
    kargs = tree / "usr/lib/bootc/kargs.d"
    kargs.mkdir(parents=True)
    (kargs / "bad.toml").write_text('match-architectures = ["x86_64"]\n')
    assert "kargs" in run(tree, "bootc", "container", "lint").stderr
    (kargs / "bad.toml").write_text('kargs = ["quiet"]\n')
    assert run(tree, "bootc", "container", "lint").returncode == 0
    second = tree / "usr/lib/modules/6.15.0-1.fc42.x86_64"
    second.mkdir()
    (second / "vmlinuz").write_text("another kernel\n")
    done = run(tree, "bootc", "container", "lint")
    assert done.returncode == 1 and "Multiple kernels" in done.stderr


def test_only_the_machines_arch_carries_build_tools(tmp_path: Path) -> None:
    assert ostree_content.OS_TOOLS.is_dir()
    for source in ostree_content.OS_TOOL_NAMES:
        text = (ostree_content.OS_TOOLS / source).read_text()
        assert text.startswith("#!/usr/bin/busybox sh\n"), source


# --- importing layers -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layers():
    sys.path.insert(0, str(HOSTLIB))
    try:
        import layers as module
    finally:
        sys.path.remove(str(HOSTLIB))
    return module


def layer(entries: list[tuple[str, str | None, str | None]]) -> bytes:
    """A layer tar: (name, file text or None for a directory, link target or None)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, text, target in entries:
            info = tarfile.TarInfo(name)
            if target is not None:
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            elif text is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                data = text.encode()
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_layers_apply_in_order_with_whiteouts(tmp_path: Path, layers) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    layers.apply_layer(
        tree,
        layer([
            ("usr", None, None), ("usr/share/doc/nano", None, None), ("usr/share/doc/nano/lab-package", "nano-8.1-1.fc42.x86_64\n", None),
            ("usr/share/doc/bash", None, None), ("usr/share/doc/bash/lab-package", "bash-5.2.32-1.fc42.x86_64\n", None),
            ("usr/lib/cache", None, None), ("usr/lib/cache/old", "old\n", None), ("usr/bin", None, None),
            ("usr/bin/sh", None, "/usr/bin/busybox"),
        ]),
    )  # fmt: skip
    layers.apply_layer(
        tree,
        layer([
            ("usr/share/doc/.wh.nano", "", None), ("usr/lib/cache/.wh..wh..opq", "", None), ("usr/lib/cache/new", "new\n", None),
            ("usr/share/doc/htop", None, None), ("usr/share/doc/htop/lab-package", "htop-3.3.0-4.fc42.x86_64\n", None),
            ("etc", None, None), ("etc/yum.repos.d", None, None), ("etc/yum.repos.d/x.repo", "[x]\n", None),
        ]),
    )  # fmt: skip
    assert not (tree / "usr/share/doc/nano").exists()
    assert sorted(p.name for p in (tree / "usr/lib/cache").iterdir()) == ["new"]
    assert os.readlink(tree / "usr/bin/sh") == "/usr/bin/busybox"  # an absolute link is the image's: kept as it is
    layers.etc_to_usr_etc(tree)
    assert (tree / "usr/etc/yum.repos.d/x.repo").read_text() == "[x]\n" and not (tree / "etc").exists()
    assert layers.tree_packages(tree) == ["bash-5.2.32-1.fc42.x86_64", "htop-3.3.0-4.fc42.x86_64"]


def test_a_layer_never_writes_through_a_link_out_of_the_tree(tmp_path: Path, layers) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    tree.mkdir()
    outside.mkdir()
    (outside / "keep").write_text("host file\n")
    layers.apply_layer(tree, layer([("escape", None, str(outside))]))
    for entries in ([("escape/keep", "overwritten\n", None)], [("escape/.wh.keep", "", None)], [("../keep", "x", None)]):
        with pytest.raises(layers.SimError):
            layers.apply_layer(tree, layer(entries))
    assert (outside / "keep").read_text() == "host file\n"


def test_layer_media_types(layers) -> None:
    import gzip

    raw = layer([("a", "b", None)])
    assert layers.layer_tar("application/vnd.oci.image.layer.v1.tar+gzip", gzip.compress(raw)) == raw
    assert layers.layer_tar("application/vnd.oci.image.layer.v1.tar", raw) == raw
    with pytest.raises(layers.SimError, match="not supported"):
        layers.layer_tar("application/vnd.oci.image.layer.v1.tar+zstd", raw)
