"""The lab's Flatpak repository: real, GPG-signed, built offline with flatpak's own build tools.

Layout written by :func:`build_server` (``server_dir`` is the HTTP document root)::

    server_dir/flatpak/repo/              archive OSTree repo, commits and summary GPG-signed
    server_dir/flatpak/lab.flatpakrepo    Url=<base_url>/flatpak/repo/, GPGKey=<base64>
    server_dir/flatpak/fedora-filter      remote filter (allow Editor + Platform//24.08, deny the rest)
    server_dir/keys/lab-flatpak.gpg|.asc  the public signing key
    server_dir/../gnupg/                  the lab's private GNUPGHOME (never served)
    server_dir/../flatpak-build/          build dirs, a builder installation, stamps

Refs: ``runtime/org.example.Platform/{x86_64,aarch64}/{23.08,24.08}`` and
``app/org.example.{Editor,Chat,Viewer}/{x86_64,aarch64}/stable`` (runtime ``org.example.Platform//24.08``).
The x86_64 runtime carries busybox-static, so the x86_64 apps really run under ``flatpak run``; the
aarch64 refs are real, installable refs whose payload holds no aarch64 binary.
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

IMAGE_PACKAGES: list[str] = ["flatpak", "gnupg"]

RUNTIME_ID = "org.example.Platform"
RUNTIME_BRANCHES = ("23.08", "24.08")
APP_RUNTIME_BRANCH = "24.08"
APP_IDS = ("org.example.Editor", "org.example.Chat", "org.example.Viewer")
APP_BRANCH = "stable"
ARCHES = ("x86_64", "aarch64")
DEFAULT_ARCH = "x86_64"
FILTER_RULES = ("deny *", "allow app/org.example.Editor/*/stable", f"allow runtime/{RUNTIME_ID}/*/24.08")

KEY_UID = "Immutable Hosts Lab Flatpak <flatpak@images.lab>"
REPO_TITLE = "Immutable Hosts Lab"
RECIPE = "immutable-hosts-lab-flatpak/1"

# What Fedora Silverblue/Kinoite ship: a filtered, disabled remote named flathub.
FEDORA_PROFILES = ("silverblue", "kinoite")
FEDORA_REMOTE = "flathub"
FEDORA_FILTER = pathlib.PurePosixPath("/usr/share/flatpak/fedora-flathub.filter")
FEDORA_TITLE = "Flathub"
FEDORA_COMMENT = "Central repository of Flatpak applications"
FEDORA_HOMEPAGE = "https://flathub.org/"

_last_server_dir: pathlib.Path | None = None


class FlatpakContentError(RuntimeError):
    """A build tool failed; the message carries its argv and stderr."""


@dataclass(frozen=True)
class Layout:
    server_dir: pathlib.Path

    @property
    def flatpak_dir(self) -> pathlib.Path:
        return self.server_dir / "flatpak"

    @property
    def repo(self) -> pathlib.Path:
        return self.flatpak_dir / "repo"

    @property
    def flatpakrepo(self) -> pathlib.Path:
        return self.flatpak_dir / "lab.flatpakrepo"

    @property
    def filter_file(self) -> pathlib.Path:
        return self.flatpak_dir / "fedora-filter"

    @property
    def pubkey(self) -> pathlib.Path:
        return self.server_dir / "keys" / "lab-flatpak.gpg"

    @property
    def pubkey_asc(self) -> pathlib.Path:
        return self.server_dir / "keys" / "lab-flatpak.asc"

    @property
    def gnupg(self) -> pathlib.Path:
        return self.server_dir.parent / "gnupg"

    @property
    def work(self) -> pathlib.Path:
        return self.server_dir.parent / "flatpak-build"

    @property
    def stamp(self) -> pathlib.Path:
        return self.work / "stamp.json"

    @property
    def generations(self) -> pathlib.Path:
        return self.work / "generations.json"


# ----------------------------------------------------------------------------------------------------
# small helpers


def run(argv: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FlatpakContentError(f"{' '.join(argv)} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def write_if_changed(path: pathlib.Path, data: str | bytes, mode: int = 0o644) -> bool:
    raw = data.encode() if isinstance(data, str) else data
    if path.exists() and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
        tmp.write(raw)
    os.chmod(tmp.name, mode)
    os.replace(tmp.name, path)
    return True


def all_refs() -> list[str]:
    refs = [f"runtime/{RUNTIME_ID}/{a}/{b}" for a in ARCHES for b in RUNTIME_BRANCHES]
    refs += [f"app/{app}/{a}/{APP_BRANCH}" for a in ARCHES for app in APP_IDS]
    return sorted(refs)


def parse_ref(ref: str) -> tuple[str, str, str, str]:
    """``app/ID/ARCH/BRANCH`` or ``runtime/…``; a bare lab ID means its x86_64 default branch."""
    parts = ref.split("/")
    if len(parts) == 4 and parts[0] in ("app", "runtime"):
        kind, ident, arch, branch = parts
    elif len(parts) == 1 and parts[0] in APP_IDS:
        kind, ident, arch, branch = "app", parts[0], DEFAULT_ARCH, APP_BRANCH
    elif len(parts) == 1 and parts[0] == RUNTIME_ID:
        kind, ident, arch, branch = "runtime", RUNTIME_ID, DEFAULT_ARCH, APP_RUNTIME_BRANCH
    else:
        raise ValueError(f"not a flatpak ref: {ref!r}")
    full = f"{kind}/{ident}/{arch}/{branch}"
    if full not in all_refs():
        raise ValueError(f"the lab repo has no ref {full}")
    return kind, ident, arch, branch


def is_flatpak_ref(target: str) -> bool:
    """True when ``target`` names one of this repo's refs (for ``lab sim publish`` dispatch)."""
    try:
        parse_ref(target)
    except ValueError:
        return False
    return True


def isolated_env(base: pathlib.Path, **extra: str) -> dict[str, str]:
    """Environment for flatpak that touches nothing outside ``base`` (no /var/lib/flatpak, no ~)."""
    home = base / "home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "FLATPAK_USER_DIR": str(base / "user"),
        "FLATPAK_SYSTEM_DIR": str(base / "system"),
        "FLATPAK_CONFIG_DIR": str(base / "etc"),
    }
    env.update(extra)
    for key in ("HOME", "FLATPAK_CONFIG_DIR"):
        pathlib.Path(env[key]).mkdir(parents=True, exist_ok=True)
    return env


# ----------------------------------------------------------------------------------------------------
# GPG


def gpg_env(gnupg: pathlib.Path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GNUPGHOME": str(gnupg), "LANG": "C"}


def key_fingerprint(gnupg: pathlib.Path) -> str | None:
    """Fingerprint of the first key whose secret part is in ``gnupg``.

    Reads the public keyring and private-keys-v1.d, so no gpg-agent is started (--list-secret-keys would).
    """
    if not gnupg.is_dir():
        return None
    out = run(["gpg", "--batch", "--with-colons", "--with-keygrip", "--list-keys"], gpg_env(gnupg))
    fingerprint = None
    for line in out.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            fingerprint = None
        elif fields[0] == "fpr" and fingerprint is None:
            fingerprint = fields[9]
        elif fields[0] == "grp" and fingerprint and (gnupg / "private-keys-v1.d" / f"{fields[9]}.key").is_file():
            return fingerprint
    return None


def ensure_key(gnupg: pathlib.Path) -> str:
    """The lab's signing key (ed25519, no passphrase), generated once; returns its fingerprint."""
    fingerprint = key_fingerprint(gnupg)
    if fingerprint:
        return fingerprint
    gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
    gnupg.chmod(0o700)
    run(
        [
            "gpg",
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            KEY_UID,
            "ed25519",
            "sign",
            "never",
        ],
        gpg_env(gnupg),
    )
    fingerprint = key_fingerprint(gnupg)
    if not fingerprint:
        raise FlatpakContentError(f"no secret key in {gnupg} after generating one")
    return fingerprint


def export_key(gnupg: pathlib.Path, fingerprint: str, armor: bool = False) -> bytes:
    argv = ["gpg", "--batch", *(["--armor"] if armor else []), "--export", fingerprint]
    proc = subprocess.run(argv, env=gpg_env(gnupg), capture_output=True, check=True)
    return proc.stdout


def stop_agent(gnupg: pathlib.Path) -> None:
    """gpg and gpgme start a gpg-agent for this GNUPGHOME; end it so no process outlives the build."""
    if gnupg.is_dir():
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "all"], capture_output=True, check=False)


# ----------------------------------------------------------------------------------------------------
# build directories


def runtime_build_dir(lay: Layout, arch: str, branch: str, generation: int) -> pathlib.Path:
    """A runtime build dir as build-export --runtime expects it: metadata, files/ and usr/ (exported)."""
    d = lay.work / "build" / f"runtime-{arch}-{branch}"
    usr = d / "usr"
    (d / "files").mkdir(parents=True, exist_ok=True)
    (usr / "bin").mkdir(parents=True, exist_ok=True)
    (usr / "lib").mkdir(parents=True, exist_ok=True)
    write_if_changed(
        d / "metadata", f"[Runtime]\nname={RUNTIME_ID}\nruntime={RUNTIME_ID}/{arch}/{branch}\nsdk={RUNTIME_ID}/{arch}/{branch}\n"
    )
    write_if_changed(
        usr / "lib/os-release",
        f'NAME="{RUNTIME_ID}"\nID=org.example.platform\nVERSION_ID={branch}\nBUILD_ID={generation}\nARCH={arch}\n',
    )
    if arch == os.uname().machine:
        busybox = pathlib.Path("/bin/busybox")
        if not (usr / "bin/busybox").exists():
            shutil.copy2(busybox, usr / "bin/busybox")
        if not (usr / "bin/sh").is_symlink():
            (usr / "bin/sh").symlink_to("busybox")
    return d


def app_command(app: str) -> str:
    return app.rsplit(".", 1)[1].lower()


def app_build_dir(lay: Layout, env: dict[str, str], app: str, arch: str, generation: int) -> pathlib.Path:
    """An app build dir made by build-init + build-finish (once), with a payload naming its generation."""
    d = lay.work / "build" / f"app-{app}-{arch}"
    cmd = app_command(app)
    if not (d / "metadata").is_file():
        shutil.rmtree(d, ignore_errors=True)
        run(["flatpak", "build-init", f"--arch={arch}", str(d), app, RUNTIME_ID, RUNTIME_ID, APP_RUNTIME_BRANCH], env)
        _write_app_payload(d, app, cmd, generation)
        run(
            [
                "flatpak",
                "build-finish",
                str(d),
                f"--command={cmd}",
                "--share=network",
                "--socket=wayland",
                "--filesystem=xdg-documents",
            ],
            env,
        )
    _write_app_payload(d, app, cmd, generation)
    return d


def _write_app_payload(d: pathlib.Path, app: str, cmd: str, generation: int) -> None:
    write_if_changed(d / "files/bin" / cmd, f'#!/bin/sh\necho "{app} generation {generation}"\n', 0o755)
    write_if_changed(d / "files/share/immutable-hosts-lab/generation", f"{generation}\n")


def ensure_builder(lay: Layout, fingerprint: str) -> dict[str, str]:
    """A private installation holding Platform//24.08 for every arch: build-init needs the SDK installed."""
    env = isolated_env(lay.work / "builder")
    remotes = run(["flatpak", "--user", "remotes", "--columns=name"], env).split()
    if "lab" not in remotes:
        run(["flatpak", "--user", "remote-add", f"--gpg-import={lay.pubkey}", "lab", f"file://{lay.repo}/"], env)
    for arch in ARCHES:
        ref = f"runtime/{RUNTIME_ID}/{arch}/{APP_RUNTIME_BRANCH}"
        run(["flatpak", "--user", "install", "-y", "--noninteractive", "--or-update", "lab", ref], env)
    return env


# ----------------------------------------------------------------------------------------------------
# repo operations


def export(lay: Layout, fingerprint: str, build_dir: pathlib.Path, arch: str, branch: str, runtime: bool, subject: str) -> None:
    argv = [
        "flatpak",
        "build-export",
        f"--arch={arch}",
        f"--gpg-sign={fingerprint}",
        f"--gpg-homedir={lay.gnupg}",
        "--no-update-summary",
        f"--subject={subject}",
    ]
    if runtime:
        argv.append("--runtime")
    run([*argv, str(lay.repo), str(build_dir), branch])


def update_repo(lay: Layout, fingerprint: str) -> None:
    """Regenerate appstream and the summary, GPG-signed, with the key in the summary metadata."""
    run(
        [
            "flatpak",
            "build-update-repo",
            f"--title={REPO_TITLE}",
            f"--gpg-import={lay.pubkey}",
            f"--gpg-sign={fingerprint}",
            f"--gpg-homedir={lay.gnupg}",
            str(lay.repo),
        ]
    )


def resign(lay: Layout, fingerprint: str) -> None:
    """Sign every ref's head with ``fingerprint`` (after the lab key was regenerated)."""
    for ref in all_refs():
        kind, ident, arch, branch = ref.split("/")
        argv = ["flatpak", "build-sign", f"--arch={arch}", f"--gpg-sign={fingerprint}", f"--gpg-homedir={lay.gnupg}"]
        run([*argv, *(["--runtime"] if kind == "runtime" else []), str(lay.repo), ident, branch])
    update_repo(lay, fingerprint)


def rev_parse(repo: pathlib.Path, ref: str) -> str:
    return run(["ostree", f"--repo={repo}", "rev-parse", ref]).strip()


def repo_refs(repo: pathlib.Path) -> set[str]:
    if not (repo / "config").is_file():
        return set()
    return set(run(["ostree", f"--repo={repo}", "refs"]).split())


def load_json(path: pathlib.Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def generation_of(lay: Layout, ref: str) -> int:
    value = load_json(lay.generations).get(ref, 1)
    return value if isinstance(value, int) else 1


def set_generation(lay: Layout, ref: str, generation: int) -> None:
    data = load_json(lay.generations)
    data[ref] = generation
    write_if_changed(lay.generations, json.dumps(data, indent=1, sort_keys=True) + "\n")


def export_ref(lay: Layout, fingerprint: str, builder: dict[str, str] | None, ref: str) -> dict[str, str] | None:
    """Build and export one ref at its current generation; returns the builder env (made lazily for apps)."""
    kind, ident, arch, branch = parse_ref(ref)
    generation = generation_of(lay, ref)
    subject = f"{ident} {branch} ({arch}) generation {generation}"
    if kind == "runtime":
        export(lay, fingerprint, runtime_build_dir(lay, arch, branch, generation), arch, branch, True, subject)
        return builder
    builder = builder or ensure_builder(lay, fingerprint)
    export(lay, fingerprint, app_build_dir(lay, builder, ident, arch, generation), arch, branch, False, subject)
    return builder


def build_repo(lay: Layout, fingerprint: str) -> None:
    """From scratch: runtimes first (signed summary), then the builder installation, then the apps."""
    shutil.rmtree(lay.repo, ignore_errors=True)
    shutil.rmtree(lay.work, ignore_errors=True)
    lay.work.mkdir(parents=True)
    run(["ostree", "init", f"--repo={lay.repo}", "--mode=archive"])
    runtimes = [r for r in all_refs() if r.startswith("runtime/")]
    for ref in runtimes:
        export_ref(lay, fingerprint, None, ref)
    update_repo(lay, fingerprint)
    builder = ensure_builder(lay, fingerprint)
    for ref in all_refs():
        if ref.startswith("app/"):
            export_ref(lay, fingerprint, builder, ref)
    update_repo(lay, fingerprint)


# ----------------------------------------------------------------------------------------------------
# client-side files


def flatpakrepo_text(url: str, key: bytes, title: str = REPO_TITLE, comment: str = "", homepage: str = "") -> str:
    lines = ["[Flatpak Repo]", f"Title={title}", f"Url={url}"]
    lines += [f"Comment={comment}"] if comment else []
    lines += [f"Homepage={homepage}"] if homepage else []
    lines.append(f"GPGKey={base64.b64encode(key).decode()}")
    return "\n".join(lines) + "\n"


def filter_text() -> str:
    header = "# Remote filter of the immutable-hosts lab, like Fedora's filtered flathub.\n"
    return header + "\n".join(FILTER_RULES) + "\n"


def repo_url(base_url: str) -> str:
    return base_url.rstrip("/") + "/flatpak/repo/"


def write_client_files(lay: Layout, base_url: str, fingerprint: str) -> None:
    key = export_key(lay.gnupg, fingerprint)
    write_if_changed(lay.pubkey, key)
    write_if_changed(lay.pubkey_asc, export_key(lay.gnupg, fingerprint, armor=True))
    write_if_changed(lay.flatpakrepo, flatpakrepo_text(repo_url(base_url), key))
    write_if_changed(lay.filter_file, filter_text())


def stamp_for(fingerprint: str) -> dict[str, object]:
    return {"recipe": RECIPE, "fingerprint": fingerprint, "refs": all_refs()}


# ----------------------------------------------------------------------------------------------------
# public interface


def build_server(server_dir: pathlib.Path, base_url: str) -> None:
    """Build (or reuse) the signed repo and write the .flatpakrepo, the filter and the public key.

    Idempotent: a repo built by the same recipe with the same key is kept as it is, published
    commits included; a new key re-signs every head with ``flatpak build-sign``.
    """
    global _last_server_dir
    lay = Layout(pathlib.Path(server_dir))
    _last_server_dir = lay.server_dir
    try:
        fingerprint = ensure_key(lay.gnupg)
        write_client_files(lay, base_url, fingerprint)
        stamp = load_json(lay.stamp)
        complete = set(all_refs()) <= repo_refs(lay.repo) and (lay.repo / "summary").is_file()
        if complete and stamp.get("recipe") == RECIPE and stamp.get("refs") == all_refs():
            if stamp.get("fingerprint") != fingerprint:
                resign(lay, fingerprint)
        else:
            build_repo(lay, fingerprint)
        write_if_changed(lay.stamp, json.dumps(stamp_for(fingerprint), indent=1) + "\n")
    finally:
        stop_agent(lay.gnupg)


def publish(server_dir: pathlib.Path, ref: str) -> str:
    """Commit new content for ``ref`` (full ref, or a bare lab ID) and re-sign the summary.

    Returns the new commit checksum, which differs from the previous head.
    """
    lay = Layout(pathlib.Path(server_dir))
    kind, ident, arch, branch = parse_ref(ref)
    full = f"{kind}/{ident}/{arch}/{branch}"
    fingerprint = key_fingerprint(lay.gnupg)
    if not fingerprint or full not in repo_refs(lay.repo):
        raise FlatpakContentError(f"no lab flatpak repo with {full} under {server_dir}: run build_server first")
    before = rev_parse(lay.repo, full)
    try:
        set_generation(lay, full, generation_of(lay, full) + 1)
        export_ref(lay, fingerprint, None, full)
        update_repo(lay, fingerprint)
    finally:
        stop_agent(lay.gnupg)
    after = rev_parse(lay.repo, full)
    if after == before:
        raise FlatpakContentError(f"publishing {full} made no new commit")
    return after


def default_server_dir() -> pathlib.Path:
    if _last_server_dir is not None:
        return _last_server_dir
    from immutable_hosts.lab.state import resolve_state_dir

    return resolve_state_dir() / "server"


# chroot with a private /proc (libostree reads /proc/sys/kernel/random/boot_id); mounts vanish on exit.
IN_ROOT = 'mount --make-rprivate / && mount -t proc proc "$1/proc" && exec chroot "$@"'


def remote_add_argv(repo_file: str) -> list[str]:
    return [
        "flatpak",
        "--system",
        "remote-add",
        "--if-not-exists",
        "--disable",
        f"--filter={FEDORA_FILTER}",
        FEDORA_REMOTE,
        repo_file,
    ]


def add_remote_with_host_flatpak(root: pathlib.Path, repo_text: str) -> None:
    """The image's own flatpak (trixie 1.16) adds the remote to its /var/lib/flatpak, chrooted."""
    with tempfile.TemporaryDirectory(prefix="lab-flatpak-", dir=root / "tmp") as tmp:
        repo_file = pathlib.Path(tmp) / "flathub.flatpakrepo"
        repo_file.write_text(repo_text)
        inside = "/" + str(repo_file.relative_to(root))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        argv = ["unshare", "-m", "sh", "-c", IN_ROOT, "sh", str(root), *remote_add_argv(inside)]
        run(argv, env)


def add_remote_with_machine_flatpak(root: pathlib.Path, repo_text: str) -> None:
    """This machine's flatpak adds the remote, with FLATPAK_SYSTEM_DIR at the host's /var/lib/flatpak."""
    system_dir = root / "var/lib/flatpak"
    system_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lab-flatpak-") as tmp:
        env = isolated_env(pathlib.Path(tmp), FLATPAK_SYSTEM_DIR=str(system_dir))
        repo_file = pathlib.Path(tmp) / "flathub.flatpakrepo"
        repo_file.write_text(repo_text)
        run(remote_add_argv(str(repo_file)), env)


def provision_host(root: pathlib.Path, profile: str, base_url: str, server_dir: pathlib.Path | None = None) -> None:
    """Silverblue/Kinoite: add the system remote ``flathub`` as Fedora ships it: filtered and disabled.

    flatpak itself adds it (``flatpak --system remote-add --disable --filter=…``), so repo/config and
    flathub.trustedkeys.gpg are exactly what flatpak writes: the image's own flatpak when ``root`` has
    one (as root, chrooted), else this machine's with FLATPAK_SYSTEM_DIR=<root>/var/lib/flatpak.
    Other profiles (apple-silicon, bootc) get no remote.  ``server_dir`` (for the public key) defaults
    to the one of the last build_server call in this process, else <lab state dir>/server.
    """
    if profile not in FEDORA_PROFILES:
        return
    lay = Layout(pathlib.Path(server_dir) if server_dir else default_server_dir())
    repo_text = flatpakrepo_text(repo_url(base_url), lay.pubkey.read_bytes(), FEDORA_TITLE, FEDORA_COMMENT, FEDORA_HOMEPAGE)
    write_if_changed(root / str(FEDORA_FILTER).lstrip("/"), filter_text())
    if os.geteuid() == 0 and (root / "usr/bin/flatpak").exists() and (root / "tmp").is_dir():
        add_remote_with_host_flatpak(root, repo_text)
    else:
        add_remote_with_machine_flatpak(root, repo_text)
