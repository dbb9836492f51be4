"""The lab's Flatpak content, checked with the real flatpak and ostree CLIs (GPG verification on).

Every client runs in an isolated FLATPAK_SYSTEM_DIR / FLATPAK_USER_DIR / FLATPAK_CONFIG_DIR / HOME, so
nothing outside pytest's tmp dirs is touched.  The repo is served over HTTP on 127.0.0.1 by a
``python -m http.server`` that each fixture starts and stops by PID.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from immutable_hosts.lab import flatpak_content as fc

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("flatpak", "ostree", "gpg")) or not os.path.exists("/bin/busybox"),
    reason="needs flatpak, ostree, gnupg and busybox-static (apt-get install flatpak ostree busybox-static)",
)

X86_REFS = {
    "runtime/org.example.Platform/x86_64/23.08",
    "runtime/org.example.Platform/x86_64/24.08",
    "app/org.example.Editor/x86_64/stable",
    "app/org.example.Chat/x86_64/stable",
    "app/org.example.Viewer/x86_64/stable",
}

FEDORA_REMOTE_CONFIG = {
    "url": "http://images.lab:8088/flatpak/repo/",
    "xa.title": "Flathub",
    "gpg-verify": "true",
    "gpg-verify-summary": "true",
    "xa.comment": fc.FEDORA_COMMENT,
    "xa.homepage": fc.FEDORA_HOMEPAGE,
    "xa.filter": "/usr/share/flatpak/fedora-flathub.filter",
    "xa.disable": "true",
}


@contextlib.contextmanager
def http_server(directory: pathlib.Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (free port); yields the base URL; stops the server by PID."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("http.server did not come up")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Served:
    def __init__(self, server_dir: pathlib.Path, base_url: str) -> None:
        self.server_dir = server_dir
        self.base_url = base_url
        self.lay = fc.Layout(server_dir)


@contextlib.contextmanager
def served_lab(root: pathlib.Path) -> Iterator[Served]:
    server_dir = root / "server"
    server_dir.mkdir(parents=True)
    with http_server(server_dir) as url:
        fc.build_server(server_dir, url)
        yield Served(server_dir, url)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One repo shared by the read-only tests of this module."""
    with served_lab(tmp_path_factory.mktemp("flatpak-lab")) as served:
        yield served


class Client:
    """An isolated flatpak client; ``flatpak()`` raises on failure unless check=False."""

    def __init__(self, base: pathlib.Path) -> None:
        self.env = fc.isolated_env(base)

    def flatpak(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["flatpak", *args], env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"flatpak {' '.join(args)} rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def remote_refs(self, remote: str, *extra: str) -> set[str]:
        out = self.flatpak("--system", "remote-ls", "--columns=ref", *extra, remote).stdout
        return set(out.split())

    def commit_of(self, remote: str, ref: str) -> str:
        out = self.flatpak("--system", "remote-info", "--show-commit", remote, ref).stdout
        return out.strip()


@pytest.fixture
def client(tmp_path: pathlib.Path) -> Client:
    return Client(tmp_path / "client")


def remote_config(system_dir: pathlib.Path, name: str) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(system_dir / "repo" / "config")
    return dict(parser[f'remote "{name}"'])


# ----------------------------------------------------------------------------------------------------


def test_repo_holds_every_ref_for_both_arches(lab: Served) -> None:
    refs = fc.repo_refs(lab.lay.repo)
    assert set(fc.all_refs()) <= refs
    assert len(fc.all_refs()) == 2 * 2 + 3 * 2
    for ref in fc.all_refs():
        meta = fc.run(["ostree", f"--repo={lab.lay.repo}", "show", "--print-metadata-key=xa.metadata", ref])
        kind, ident, arch, _branch = ref.split("/")
        assert f"name={ident}" in meta
        if kind == "app":
            assert f"runtime=org.example.Platform/{arch}/24.08" in meta


def test_flatpakrepo_file_points_at_repo_with_key(lab: Served) -> None:
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(lab.lay.flatpakrepo)
    section = parser["Flatpak Repo"]
    assert section["Url"] == f"{lab.base_url}/flatpak/repo/"
    assert base64.b64decode(section["GPGKey"]) == lab.lay.pubkey.read_bytes()
    assert lab.lay.pubkey_asc.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert not any(p.name.startswith("private-keys") for p in lab.server_dir.rglob("*")), "secret key is served"


def test_install_and_run_over_http_with_gpg(lab: Served, client: Client) -> None:
    client.flatpak("--system", "remote-add", "--from", "lab", f"{lab.base_url}/flatpak/lab.flatpakrepo")
    config = remote_config(pathlib.Path(client.env["FLATPAK_SYSTEM_DIR"]), "lab")
    assert config["gpg-verify"] == "true" and config["gpg-verify-summary"] == "true"
    assert client.remote_refs("lab") == X86_REFS
    client.flatpak("--system", "install", "-y", "--noninteractive", "lab", "org.example.Editor")
    listed = client.flatpak("--system", "list", "--columns=ref,origin").stdout.split()
    assert "org.example.Editor/x86_64/stable" in listed
    assert "org.example.Platform/x86_64/24.08" in listed, "runtime dependency was not resolved"
    run = client.flatpak("run", "org.example.Editor")
    assert run.stdout.strip() == "org.example.Editor generation 1"


def test_aarch64_refs_are_listed_and_installable(lab: Served, client: Client) -> None:
    client.flatpak("--system", "remote-add", "--from", "lab", str(lab.lay.flatpakrepo))
    aarch64 = client.remote_refs("lab", "--arch=aarch64")
    assert aarch64 == {r.replace("x86_64", "aarch64") for r in X86_REFS}
    client.flatpak(
        "--system", "install", "-y", "--noninteractive", "--arch=aarch64", "lab", "app/org.example.Viewer/aarch64/stable"
    )
    listed = client.flatpak("--system", "list", "--arch=aarch64", "--columns=ref").stdout.split()
    assert set(listed) == {"org.example.Viewer/aarch64/stable", "org.example.Platform/aarch64/24.08"}


def test_untrusted_key_is_rejected(lab: Served, client: Client) -> None:
    """GPG verification is real: the same repo without the lab key in the keyring fails."""
    client.flatpak("--system", "remote-add", "lab", f"{lab.base_url}/flatpak/repo/", check=False)
    proc = client.flatpak("--system", "remote-ls", "lab", check=False)
    assert proc.returncode != 0
    assert "Can't check signature: public key not found" in proc.stderr
    fingerprint = fc.key_fingerprint(lab.lay.gnupg)
    assert fingerprint and fingerprint[-16:] in proc.stderr, "summary not signed by the lab key"


def test_filtered_remote_hides_refs(lab: Served, client: Client) -> None:
    client.flatpak("--system", "remote-add", f"--filter={lab.lay.filter_file}", "--from", "flathub", str(lab.lay.flatpakrepo))
    assert client.remote_refs("flathub") == {"app/org.example.Editor/x86_64/stable", "runtime/org.example.Platform/x86_64/24.08"}
    denied = client.flatpak("--system", "install", "-y", "--noninteractive", "flathub", "org.example.Chat", check=False)
    assert denied.returncode != 0
    client.flatpak("--system", "install", "-y", "--noninteractive", "flathub", "org.example.Editor")


def test_build_server_is_idempotent_and_fast(lab: Served) -> None:
    heads = {ref: fc.rev_parse(lab.lay.repo, ref) for ref in fc.all_refs()}
    summary = (lab.lay.repo / "summary").read_bytes()
    started = time.monotonic()
    fc.build_server(lab.server_dir, lab.base_url)
    elapsed = time.monotonic() - started
    assert {ref: fc.rev_parse(lab.lay.repo, ref) for ref in fc.all_refs()} == heads
    assert (lab.lay.repo / "summary").read_bytes() == summary
    assert elapsed < 5, f"warm build_server took {elapsed:.1f} s"


def test_publish_makes_an_update_visible(tmp_path: pathlib.Path) -> None:
    with served_lab(tmp_path / "lab") as lab:
        client = Client(tmp_path / "client")
        client.flatpak("--system", "remote-add", "--from", "lab", f"{lab.base_url}/flatpak/lab.flatpakrepo")
        client.flatpak("--system", "install", "-y", "--noninteractive", "lab", "org.example.Chat")
        old = client.commit_of("lab", "app/org.example.Chat/x86_64/stable")
        assert client.flatpak("--system", "remote-ls", "--updates", "lab").stdout.strip() == ""

        new = fc.publish(lab.server_dir, "org.example.Chat")
        assert new != old and len(new) == 64
        assert client.commit_of("lab", "app/org.example.Chat/x86_64/stable") == new
        updates = client.flatpak("--system", "remote-ls", "--updates", "--columns=ref,commit", "lab").stdout
        assert "org.example.Chat" in updates and "org.example.Editor" not in updates

        client.flatpak("--system", "update", "-y", "--noninteractive")
        active = client.flatpak("--system", "info", "--show-commit", "org.example.Chat").stdout.strip()
        assert active == new
        assert client.flatpak("run", "org.example.Chat").stdout.strip() == "org.example.Chat generation 2"

        runtime_new = fc.publish(lab.server_dir, "runtime/org.example.Platform/aarch64/23.08")
        assert fc.rev_parse(lab.lay.repo, "runtime/org.example.Platform/aarch64/23.08") == runtime_new

        fc.build_server(lab.server_dir, lab.base_url)  # a warm rebuild keeps published commits
        assert fc.rev_parse(lab.lay.repo, "app/org.example.Chat/x86_64/stable") == new


def test_publish_rejects_unknown_refs(lab: Served) -> None:
    with pytest.raises(ValueError):
        fc.publish(lab.server_dir, "org.example.Nope")
    with pytest.raises(ValueError):
        fc.publish(lab.server_dir, "app/org.example.Editor/x86_64/beta")
    assert fc.is_flatpak_ref("app/org.example.Viewer/aarch64/stable")
    assert not fc.is_flatpak_ref("fedora/42/x86_64/silverblue")


def test_new_key_resigns_every_head(tmp_path: pathlib.Path) -> None:
    """A regenerated lab key re-signs the existing heads (build-sign) instead of rebuilding them."""
    with served_lab(tmp_path / "lab") as lab:
        heads = {ref: fc.rev_parse(lab.lay.repo, ref) for ref in fc.all_refs()}
        old_key = fc.key_fingerprint(lab.lay.gnupg)
        shutil.rmtree(lab.lay.gnupg)
        fc.build_server(lab.server_dir, lab.base_url)
        assert fc.key_fingerprint(lab.lay.gnupg) not in (None, old_key)
        assert {ref: fc.rev_parse(lab.lay.repo, ref) for ref in fc.all_refs()} == heads
        client = Client(tmp_path / "client")
        client.flatpak("--system", "remote-add", "--from", "lab", str(lab.lay.flatpakrepo))
        client.flatpak("--system", "install", "-y", "--noninteractive", "lab", "org.example.Viewer")


def test_provision_silverblue_adds_fedora_style_remote(lab: Served, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "root"
    fc.provision_host(root, "silverblue", "http://images.lab:8088", server_dir=lab.server_dir)
    fc.provision_host(root, "silverblue", "http://images.lab:8088", server_dir=lab.server_dir)  # idempotent
    system_dir = root / "var/lib/flatpak"
    assert remote_config(system_dir, "flathub") == FEDORA_REMOTE_CONFIG
    assert (root / "usr/share/flatpak/fedora-flathub.filter").read_text() == fc.filter_text()

    # The host's installation, read by flatpak: the remote is disabled and filtered.
    host = Client(tmp_path / "hostclient")
    host.env["FLATPAK_SYSTEM_DIR"] = str(system_dir)
    shown = host.flatpak("--system", "remotes", "--show-disabled", "--columns=name,options").stdout
    assert shown.split() == ["flathub", "disabled,filtered"]
    assert host.flatpak("--system", "remotes", "--columns=name").stdout.strip() == ""

    # Enabled and pointed at the served repo, the imported key verifies it and the filter applies.
    host.flatpak(
        "--system",
        "remote-modify",
        "--enable",
        f"--url={lab.base_url}/flatpak/repo/",
        f"--filter={root}/usr/share/flatpak/fedora-flathub.filter",
        "flathub",
    )
    assert host.remote_refs("flathub") == {"app/org.example.Editor/x86_64/stable", "runtime/org.example.Platform/x86_64/24.08"}


@pytest.mark.parametrize("profile", ["apple-silicon", "bootc"])
def test_provision_other_profiles_add_nothing(lab: Served, tmp_path: pathlib.Path, profile: str) -> None:
    fc.provision_host(tmp_path, profile, "http://images.lab:8088", server_dir=lab.server_dir)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------------
# the host's own flatpak (trixie, 1.16) on a provisioned root


# chroot into the overlay with the server dir at /srv/lab, in private mount and network namespaces.
CHROOT = r"""
set -e
C=$1; S=$2; shift 2
mount --make-rprivate /
mount -t proc proc "$C/proc"
mount --rbind /dev "$C/dev"
mount -t tmpfs tmpfs "$C/run"; mount -t tmpfs -o mode=1777 tmpfs "$C/tmp"
mkdir -p "$C/srv/lab"; mount --bind "$S" "$C/srv/lab"
exec chroot "$C" "$@"
"""

IN_HOST = r"""
set -e
echo "== version"; flatpak --version
echo "== remotes"; flatpak remotes --show-disabled --columns=name,options
flatpak remote-modify --enable --url=file:///srv/lab/flatpak/repo/ flathub
echo "== ls"; flatpak remote-ls --columns=ref flathub
flatpak install -y --noninteractive flathub org.example.Editor >/dev/null
echo "== list"; flatpak list --columns=ref,origin,installation
echo "== end"
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts, namespaces, chroot)")
def test_host_flatpak_uses_provisioned_remote(lab: Served, tmp_path: pathlib.Path, lab_image_rootfs: pathlib.Path) -> None:
    """The image's flatpak reads what provision_host wrote, verifies the lab key and applies the filter."""
    lower = lab_image_rootfs
    assert (lower / "usr/bin/flatpak").exists() and (lower / "usr/bin/gpg").exists()
    dirs = {name: tmp_path / name for name in ("upper", "work", "merged")}
    for path in dirs.values():
        path.mkdir()
    options = f"lowerdir={lower},upperdir={dirs['upper']},workdir={dirs['work']}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(dirs["merged"])], check=True)
    try:
        fc.provision_host(dirs["merged"], "silverblue", "http://images.lab:8088", server_dir=lab.server_dir)
        written_by_host = remote_config(dirs["merged"] / "var/lib/flatpak", "flathub")
        proc = subprocess.run(
            [
                "unshare",
                "-m",
                "-n",
                "--propagation",
                "private",
                "bash",
                "-c",
                CHROOT,
                "chroot",
                str(dirs["merged"]),
                str(lab.server_dir),
                "sh",
                "-c",
                IN_HOST,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        subprocess.run(["umount", str(dirs["merged"])], check=True)
    assert written_by_host == FEDORA_REMOTE_CONFIG
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    sections = dict(part.split("\n", 1) for part in proc.stdout.split("== ")[1:])
    assert sections["remotes"].split() == ["flathub", "system,disabled,filtered"]
    assert set(sections["ls"].split()) == {"app/org.example.Editor/x86_64/stable", "runtime/org.example.Platform/x86_64/24.08"}
    listed = sections["list"].split()
    assert "org.example.Editor/x86_64/stable" in listed and "org.example.Platform/x86_64/24.08" in listed
