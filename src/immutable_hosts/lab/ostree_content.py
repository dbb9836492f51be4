"""OSTree content of the lab: the image server's archive repo, OCI catalogue, package catalogue, hosts' sysroots.

Layout written by :func:`build_server` under ``server_dir``:

* ``ostree/``: archive repo. Refs ``fedora/{41,42}/{x86_64,aarch64}/silverblue`` and
  ``fedora/42/x86_64/kinoite``, two commits each (``4x.2024MMDD.0``), a minimal bootable tree
  (kernel in ``usr/lib/modules/KVER/vmlinuz``, ``usr/lib/os-release``, ``usr/etc``), commit
  metadata as a Fedora compose writes it (``version``, ``ostree.bootable``, ``ostree.linux``,
  ``rpmostree.inputhash``, ``rpmostree.initramfs-args``, ``rpmostree.rpmmd-repos``,
  ``rpmostree.rpmdb.pkglist`` = what the base provides). Container images are commits under
  ``ostree/container/image/<arch>/<escaped docker://IMAGE>`` carrying ostree-ext metadata.
* ``oci/layout/``: the OS images as a real OCI image layout (:mod:`oci_layout`), one image index per name, which
  ``registry.py`` pushes to the lab registry and signs.
* ``oci/catalogue.json``: image reference → per-arch ``{digest, commit, ref, version, created}`` (``digest``: the
  real manifest digest; ``commit``: the OSTree commit the simulators import for it, also under
  ``lab/manifest/sha256/<hex>``), the index digest, the layout ref and the lab key that signs it. Missing arch key =
  no manifest for that arch.
* ``packages/catalogue.json``: per Fedora release and arch, repo packages (name → NEVRA) and the
  packages each base variant provides. The simulators read the same data from
  ``/usr/share/rpm-ostree-sim/repos.json`` in the image.

Local RPMs (``override replace``, ``install ./x.rpm``) are real, empty RPM packages built with ``rpmbuild``
(Debian's ``rpm`` package); the simulator reads their headers with ``rpm -qp``. See :func:`make_local_rpm`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from immutable_hosts.lab.oci_layout import Layout, ref_name
from immutable_hosts.lab.sim import AUTOMATIC_SERVICE, AUTOMATIC_TIMER, BOOTC_SERVICE, BOOTC_TIMER
from immutable_hosts.lab.sim.hostlib import simcore

RELEASES = ("41", "42")
ARCHES = ("x86_64", "aarch64")
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
OCI_VARIANT = {"aarch64": "v8"}
REFS = (
    "fedora/41/x86_64/silverblue",
    "fedora/41/aarch64/silverblue",
    "fedora/42/x86_64/silverblue",
    "fedora/42/aarch64/silverblue",
    "fedora/42/x86_64/kinoite",
)
HISTORY = {"41": ("20241020", "20241104"), "42": ("20250410", "20250415")}
KERNELS = {"41": "6.11.6-300.fc41", "42": "6.14.2-300.fc42"}
# The OS images of the lab registry (registry.py): what each is built from, which arches its index lists and which
# lab key signs it (None: unsigned). "registry.lab:5001/..." is the registry's authenticated instance.
IMAGES: dict[str, dict[str, Any]] = {
    "quay.io/fedora/fedora-silverblue:41": {"release": "41", "variant": "silverblue", "arches": ARCHES, "date": "20241112"},
    "quay.io/fedora/fedora-silverblue:42": {"release": "42", "variant": "silverblue", "arches": ARCHES, "date": "20250416"},
    "quay.io/fedora/fedora-kinoite:42": {"release": "42", "variant": "kinoite", "arches": ARCHES, "date": "20250416"},
    "quay.io/fedora-lab/silverblue-x86-only:42": {
        "release": "42",
        "variant": "silverblue",
        "arches": ("x86_64",),
        "date": "20250416",
    },
    "quay.io/fedora-lab/unsigned:42": {
        "release": "42", "variant": "silverblue", "arches": ARCHES, "date": "20250416", "signed_by": None,
    },
    "quay.io/fedora-lab/other-key:42": {
        "release": "42", "variant": "silverblue", "arches": ARCHES, "date": "20250416", "signed_by": "other",
    },
    "registry.lab:5001/private/silverblue:42": {"release": "42", "variant": "silverblue", "arches": ARCHES, "date": "20250416"},
}  # fmt: skip
DEFAULT_SIGNER = "fedora"
# Bumped when the server content's shape changes, so an older lab's content is rebuilt.
CATALOGUE_FORMAT = 5
# What a derived build runs in the lab's OS images (RUN steps of an immutable.hosts image context): busybox-static
# for the shell and coreutils, and the simulated dnf, systemctl and bootc of os_tools/. Only images of the machine's
# own architecture carry them: a build runs where the machine can execute it (no emulation here).
OS_TOOLS = Path(__file__).resolve().parent / "os_tools"
OS_TOOL_NAMES = {"dnf.sh": "dnf", "systemctl.sh": "systemctl", "bootc.sh": "bootc"}
PROFILE_REFS = {
    "silverblue": "fedora/41/x86_64/silverblue",
    "apple-silicon": "fedora/41/aarch64/silverblue",
    "kinoite": "fedora/42/x86_64/kinoite",
}
BOOTC_IMAGE = "quay.io/fedora/fedora-silverblue:41"
BOOTC_ORIGIN = f"ostree-unverified-registry:{BOOTC_IMAGE}"

# name -> (version-release template, arch kind)  {r} = Fedora release
_BASE_COMMON = {
    "bash": "5.2.32-1.fc{r}",
    "coreutils": "9.5-11.fc{r}",
    "glibc": "2.40-9.fc{r}",
    "systemd": "256.7-1.fc{r}",
    "kernel": "{k}",
    "nano": "8.1-1.fc{r}",
    "vim-minimal": "9.1.825-1.fc{r}",
    "toolbox": "0.1.1-1.fc{r}",
    "flatpak": "1.15.10-1.fc{r}",
    "podman": "5.2.5-1.fc{r}",
    "rpm-ostree": "2024.8-1.fc{r}",
    "firefox": "132.0-1.fc{r}",
    "firefox-langpacks": "132.0-1.fc{r}",
    "NetworkManager": "1.48.10-1.fc{r}",
    "bootc": "1.1.2-1.fc{r}",
}
_BASE_VARIANT = {
    "silverblue": {"gnome-shell": "47.1-1.fc{r}", "gnome-software": "47.1-1.fc{r}", "nautilus": "47.0-1.fc{r}"},
    "kinoite": {"plasma-workspace": "6.2.3-1.fc{r}", "konsole": "24.08.3-1.fc{r}", "dolphin": "24.08.3-1.fc{r}"},
}
_REPO_ONLY = {
    "htop": "3.3.0-4.fc{r}",
    "vim-enhanced": "9.1.825-1.fc{r}",
    "tmux": "3.5a-1.fc{r}",
    "zsh": "5.9-15.fc{r}",
    "fish": "3.7.1-4.fc{r}",
    "git": "2.47.0-1.fc{r}",
    "neovim": "0.10.2-1.fc{r}",
    "strace": "6.11-1.fc{r}",
}
_REPO_NOARCH = {
    "distrobox": "1.8.0-1.fc{r}",
    "gnome-tweaks": "46.1-2.fc{r}",
    "podman-compose": "1.2.0-2.fc{r}",
    "cowsay": "3.8.3-1.fc{r}",
}
REPO_TIMESTAMPS = {"41": 1729036000, "42": 1744243200}
# Repositories beyond Fedora's, as vendors and RPM Fusion publish them: served by the image server, layerable only
# while a host's /etc/yum.repos.d has them enabled. lab-extras is signed with the lab's RPM key (RPM_KEY, also at
# http://images.lab:8088/repos/RPM-GPG-KEY-lab); lab-unsigned is not signed, so gpgcheck refuses its packages.
# copr-lab-tools is a COPR project (lab/tools) on the lab's COPR hub (https://copr.lab:8443, see COPR_PROJECTS),
# signed with the project's own key (COPR_KEY) as COPR signs every project.
RPM_KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxPY+xYJKwYBBAHaRw8BAQdAJiHq/lJbyZJbQdbLNu2yc4II8cAjvP3+4W68
ipn9ApS0MEltbXV0YWJsZSBIb3N0cyBMYWIgUlBNIFNpZ25pbmcgPHJwbUBpbWFn
ZXMubGFiPoiQBBMWCAA4FiEE+ILZli9KTIb3OmcL24VlrT69BzQFAmsT2PsCGwMF
CwkIBwIGFQoJCAsCBBYCAwECHgECF4AACgkQ24VlrT69BzRVjwD/RdbsWKc95oZh
TgJXVpDGox3GkytwZM5eAhQNUNXTAqIA/ivsn+dg3Kp+2kRd5P0UWBiTo67y9RKC
q9bmWJ2EjRkG
=nC7o
-----END PGP PUBLIC KEY BLOCK-----
"""
COPR_KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEaxPxeBYJKwYBBAHaRw8BAQdAm2iXKNbr1wq7mTgJ1gNaFW8gCPMeHAyYd8U9
qy8HLku0JWxhYl90b29scyAoTm9uZSkgPGxhYiN0b29sc0Bjb3ByLmxhYj6IkAQT
FggAOBYhBLGctXbcqLAuMk6tdeTK6n+LVAJmBQJrE/F4AhsDBQsJCAcCBhUKCQgL
AgQWAgMBAh4BAheAAAoJEOTK6n+LVAJmBvgA/A4vkL1potfzveRXpTW5r8JRa/yo
3Wn+PRtvORET2gu1AQCB3CriY2000z1jZpRiqWOnHOSZ9Fumi3hqJpm8FB/aBw==
=VIFO
-----END PGP PUBLIC KEY BLOCK-----
"""
COPR_HUB = "copr.lab:8443"
EXTRA_REPOS = {
    "lab-extras": {
        "baseurl": "http://images.lab:8088/repos/lab-extras/fedora-$releasever/$basearch/",
        "key": RPM_KEY,
        "packages": {"tailscale": ("1.76.6-1", "arch"), "code": ("1.95.3-1733322347.el8", "arch")},
    },
    "lab-unsigned": {
        "baseurl": "http://images.lab:8088/repos/lab-unsigned/$basearch/",
        "key": None,
        "packages": {"lab-unsigned-tool": ("1.0-1", "noarch")},
    },
    "copr-lab-tools": {
        "baseurl": f"https://{COPR_HUB}/results/lab/tools/fedora-$releasever-$basearch/",
        "key": COPR_KEY,
        "packages": {"starship": ("1.22.1-1", "arch")},
    },
}
# The COPR projects the lab's hub serves: owner/project -> the EXTRA_REPOS entry with its packages. The hub answers
# what copr.fedorainfracloud.org answers to ``dnf copr enable``: /coprs/OWNER/PROJECT/repo/fedora-N/dnf.repo, the
# repository file for that release (with $releasever and $basearch left for libdnf), and the project's key.
COPR_PROJECTS = {"lab/tools": "copr-lab-tools"}


def copr_repo_file(project: str) -> str:
    """The .repo file the lab's hub serves for ``project``, in COPR's own shape (its id names the hub without port)."""
    owner, name = project.split("/")
    hub = COPR_HUB.split(":")[0]
    base = f"https://{COPR_HUB}/results/{owner}/{name}"
    return (
        f"[copr:{hub}:{owner}:{name}]\n"
        f"name=Copr repo for {name} owned by {owner}\n"
        f"baseurl={base}/fedora-$releasever-$basearch/\n"
        "type=rpm-md\nskip_if_unavailable=True\ngpgcheck=1\n"
        f"gpgkey={base}/pubkey.gpg\n"
        "repo_gpgcheck=0\nenabled=1\nenabled_metadata=1\n"
    )


# ---------------------------------------------------------------- helpers
def _ostree(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, OSTREE_SYSROOT_DEBUG="mutable-deployments")
    proc = subprocess.run(["ostree", *args], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ostree {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _nevra(name: str, evr: str, arch: str) -> str:
    return f"{name}-{evr}.{arch}"


def _fill(tmpl: str, release: str, arch: str) -> str:
    return tmpl.format(r=release, k=KERNELS[release])


def base_packages(release: str, arch: str, variant: str) -> dict[str, str]:
    """Packages the base image provides: name -> NEVRA."""
    names = {**_BASE_COMMON, **_BASE_VARIANT[variant]}
    return {n: _nevra(n, _fill(t, release, arch), arch) for n, t in names.items()}


def repo_packages(release: str, arch: str) -> dict[str, str]:
    """The rpm-md repos (fedora + updates) as seen by the host: name -> NEVRA."""
    pkgs = {n: _nevra(n, _fill(t, release, arch), arch) for n, t in _REPO_ONLY.items()}
    pkgs.update({n: _nevra(n, _fill(t, release, arch), "noarch") for n, t in _REPO_NOARCH.items()})
    for variant in _BASE_VARIANT:
        pkgs.update(base_packages(release, arch, variant))
    return dict(sorted(pkgs.items()))


def package_catalogue() -> dict[str, Any]:
    """Per release and arch: ``repo`` (layerable, name→NEVRA) and ``base`` (variant → provided names→NEVRA)."""
    cat: dict[str, Any] = {"format": 1, "releases": {}, "extra-repos": {}}
    for rel in RELEASES:
        for arch in ARCHES:
            cat["releases"].setdefault(rel, {})[arch] = {
                "repo": repo_packages(rel, arch),
                "repo-timestamp": REPO_TIMESTAMPS[rel],
                "base": {v: base_packages(rel, arch, v) for v in _BASE_VARIANT},
            }
    for name, spec in EXTRA_REPOS.items():
        packages = {
            rel: {
                arch: {n: _nevra(n, vr, arch if kind == "arch" else "noarch") for n, (vr, kind) in spec["packages"].items()}
                for arch in ARCHES
            }
            for rel in RELEASES
        }
        cat["extra-repos"][name] = {"baseurl": spec["baseurl"], "key": spec["key"], "packages": packages}
    return cat


def make_local_rpm(path: Path, name: str, version: str, release: str, arch: str = "noarch", epoch: int = 0) -> Path:
    """Build a real (empty) RPM package with rpmbuild and move it to ``path``."""
    with tempfile.TemporaryDirectory(prefix="lab-rpm-") as top:
        spec = Path(top) / "SPECS" / (name + ".spec")
        spec.parent.mkdir()
        lines = [
            "Name: " + name,
            "Version: " + version,
            "Release: " + release,
            *(["Epoch: %d" % epoch] if epoch else []),
            "Summary: lab package " + name,
            "License: MIT",
            "BuildArch: " + arch,
            "%description",
            "A package the immutable.hosts lab layers and overrides.",
            "%files",
            "",
        ]
        spec.write_text("\n".join(lines))
        argv = [
            "rpmbuild",
            "--quiet",
            "--define",
            "_topdir " + top,
            "--define",
            "_build_id_links none",
            "--target",
            arch,
            "-bb",
            str(spec),
        ]
        subprocess.run(argv, check=True, capture_output=True, text=True)
        built = next((Path(top) / "RPMS").rglob("*.rpm"))
        shutil.move(str(built), path)
    return path


def _timestamp(date: str, serial: int = 0) -> int:
    day = dt.datetime.strptime(date, "%Y%m%d").replace(tzinfo=dt.timezone.utc)
    return int(day.timestamp()) + 8 * 3600 + serial * 60


def _pkglist_gvariant(pkgs: dict[str, str]) -> str:
    return simcore.pkglist_gvariant(list(pkgs.values()))


# ---------------------------------------------------------------- trees and commits
UPDATE_UNITS = {
    "rpm-ostreed-automatic.service": AUTOMATIC_SERVICE,
    "rpm-ostreed-automatic.timer": AUTOMATIC_TIMER,
    "bootc-fetch-apply-updates.service": BOOTC_SERVICE,
    "bootc-fetch-apply-updates.timer": BOOTC_TIMER,
}


def _write_tree(tree: Path, release: str, arch: str, variant: str, version: str, pkgs: dict[str, str]) -> None:
    kver = f"{KERNELS[release]}.{arch}"
    moddir = tree / "usr/lib/modules" / kver
    moddir.mkdir(parents=True)
    (moddir / "vmlinuz").write_text(f"lab kernel {kver}\n")
    (moddir / "initramfs.img").write_text(f"lab initramfs {kver}\n")
    (tree / "usr/etc").mkdir(parents=True)
    (tree / "usr/lib/os-release").write_text(
        f'NAME="Fedora Linux"\nVERSION="{version} ({variant.capitalize()})"\nID=fedora\nVERSION_ID={release}\n'
        f"VARIANT=\"{variant.capitalize()}\"\nVARIANT_ID={variant}\nOSTREE_VERSION='{version}'\n"
    )
    (tree / "usr/etc/os-release").symlink_to("../lib/os-release")
    # The update units Fedora's images ship (rpm-ostree's and bootc's), so a derived build can enable or disable them.
    units = tree / "usr/lib/systemd/system"
    units.mkdir(parents=True)
    for unit, text in UPDATE_UNITS.items():
        (units / unit).write_text(text)
    for name, nevra in pkgs.items():
        d = tree / "usr/share/doc" / name
        d.mkdir(parents=True)
        (d / "lab-package").write_text(nevra + "\n")
    (tree / "usr/lib/lab-build").write_text(version + "\n")


def _compose_metadata(release: str, arch: str, version: str, pkgs: dict[str, str], date: str) -> list[str]:
    kver = f"{KERNELS[release]}.{arch}"
    inputhash = hashlib.sha256(f"{version}/{arch}/{sorted(pkgs.values())}".encode()).hexdigest()
    repos = (
        f"[{{'id': <'fedora'>, 'timestamp': <uint64 {REPO_TIMESTAMPS[release]}>}}, "
        f"{{'id': <'updates'>, 'timestamp': <uint64 {_timestamp(date) - 3600}>}}]"
    )
    return [
        f"--add-metadata-string=version={version}",
        f"--add-metadata-string=rpmostree.inputhash={inputhash}",
        "--add-metadata=rpmostree.initramfs-args=['--no-hostonly']",
        f"--add-metadata=rpmostree.rpmmd-repos={repos}",
        "--add-metadata=ostree.bootable=true",
        f"--add-metadata-string=ostree.linux={kver}",
        f"--add-metadata=rpmostree.rpmdb.pkglist={_pkglist_gvariant(pkgs)}",
    ]


def _commit(repo: Path, tree: Path, branch: str, subject: str, ts: int, meta: list[str]) -> str:
    stamp = dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")
    return _ostree(
        "commit", f"--repo={repo}", f"--branch={branch}", f"--subject={subject}", f"--timestamp={stamp}", *meta, str(tree)
    )


def _bump_pkgs(pkgs: dict[str, str], serial: int) -> dict[str, str]:
    """Newer builds of a few base packages for later composes (so diffs are non-empty)."""
    out = dict(pkgs)
    for name in ("bash", "firefox", "firefox-langpacks"):
        if name in out and serial:
            n, _e, v, r, a = simcore.split_nevra(out[name])
            head, _, dist = r.partition(".")
            out[name] = _nevra(n, f"{v}-{int(head) + serial}.{dist}", a)
    return out


def commit_ref(repo: Path, ref: str, version: str, date: str, serial: int) -> str:
    _, release, arch, variant = ref.split("/")
    pkgs = _bump_pkgs(base_packages(release, arch, variant), serial)
    with tempfile.TemporaryDirectory(prefix="h2-tree-") as tmp:
        tree = Path(tmp) / "tree"
        _write_tree(tree, release, arch, variant, version, pkgs)
        meta = _compose_metadata(release, arch, version, pkgs, date)
        return _commit(repo, tree, ref, f"Fedora {release} {variant} {version}", _timestamp(date, serial), meta)


def _image_labels(version: str, kver: str) -> dict[str, str]:
    """The labels of a Fedora bootable container image (as rpm-ostree's container encapsulation and bootc set)."""
    return {
        "containers.bootc": "1",
        "ostree.bootable": "true",
        "ostree.linux": kver,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.vendor": "Fedora Project",
    }


def _image_arch(tmp: Path, layout: Layout, name: str, arch: str, date: str, serial: int) -> dict[str, Any]:
    """One arch of an image: its tree (under ``tmp``) and its real OCI image in ``layout`` (one layer of the tree)."""
    spec = IMAGES[name]
    release, variant = spec["release"], spec["variant"]
    version = f"{release}.{date}.{serial}"
    ts = _timestamp(date, serial)
    created = dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    kver = f"{KERNELS[release]}.{arch}"
    pkgs = _bump_pkgs(base_packages(release, arch, variant), serial)
    tree = tmp / arch
    _write_tree(tree, release, arch, variant, version, pkgs)
    # Each image is its own build: no two names share a manifest, so a manifest leads back to one image's commit.
    (tree / "usr/lib/lab-image").write_text(name + "\n")
    if arch == os.uname().machine:
        add_build_tools(tree, release, arch)
    image = layout.image(tree, OCI_ARCH[arch], _image_labels(version, kver), created, variant=OCI_VARIANT.get(arch))
    return {"tree": tree, "image": image, "version": version, "created": created, "ts": ts, "kver": kver, "pkgs": pkgs}


def tools_digest() -> str:
    """A digest of what :func:`add_build_tools` puts into an image, so a change to it rebuilds the images."""
    digest = hashlib.sha256()
    for name in sorted(OS_TOOL_NAMES):
        digest.update(name.encode() + b"\0" + (OS_TOOLS / name).read_bytes())
    return digest.hexdigest()


def add_build_tools(tree: Path, release: str, arch: str) -> None:
    """What a derived build needs in an image's tree: ``/usr/bin/busybox`` with a link per applet that the image has
    no file for (the shell, ``ln``, ``mkdir``...), the simulated ``dnf``, ``systemctl`` and ``bootc``, and the package
    catalogue dnf resolves names in: ``/usr/share/lab-dnf/fedora.list`` (Fedora's repositories, "name NEVRA" lines)
    and one ``extra/NAME.list`` per other lab repository, its first line ``baseurl URL signed yes|no``."""
    from immutable_hosts.lab import oci_content

    bindir = tree / "usr/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(oci_content.find_busybox(), bindir / "busybox")
    (bindir / "busybox").chmod(0o755)
    for source, name in OS_TOOL_NAMES.items():
        shutil.copyfile(OS_TOOLS / source, bindir / name)
        (bindir / name).chmod(0o755)
    for path in oci_content.applet_paths(bindir / "busybox"):
        applet = Path(path).name
        if not (bindir / applet).exists():
            (bindir / applet).symlink_to("busybox")
    for top in ("bin", "sbin"):
        (tree / top).symlink_to("usr/bin")
    catalogue_dir = tree / "usr/share/lab-dnf"
    (catalogue_dir / "extra").mkdir(parents=True)
    lines = [f"{name} {nevra}\n" for name, nevra in repo_packages(release, arch).items()]
    (catalogue_dir / "fedora.list").write_text("".join(lines))
    for repo_name, spec in EXTRA_REPOS.items():
        url = spec["baseurl"].replace("$releasever", release).replace("$basearch", arch).rstrip("/")
        head = f"baseurl {url} signed {'yes' if spec['key'] else 'no'}\n"
        body = [
            f"{n} {_nevra(n, vr, arch if kind == 'arch' else 'noarch')}\n" for n, (vr, kind) in sorted(spec["packages"].items())
        ]
        (catalogue_dir / "extra" / f"{repo_name}.list").write_text(head + "".join(body))


def _commit_image(repo: Path, name: str, arch: str, built: dict[str, Any], index_digest: str) -> dict[str, Any]:
    """The OSTree commit the simulators import for one arch of an image, with the metadata ostree-ext gives an
    imported image: the manifest digest it was pulled by (an index's, for a multi-arch tag: the digest the registry
    and ``skopeo inspect`` show), that arch's manifest and config. The commit is also under
    ``lab/manifest/sha256/<hex of the arch's manifest>``, where the simulators find what they pulled."""
    image = built["image"]
    ref = f"ostree/container/image/{arch}/{simcore.escape_ref_component('docker://' + name)}"
    meta = [
        f"--add-metadata-string=ostree.manifest-digest={index_digest}",
        f"--add-metadata-string=ostree.manifest={image['manifest']}",
        f"--add-metadata-string=ostree.container.image-config={image['config']}",
        "--add-metadata-string=ostree.importer.version=0.15.3",
        f"--add-metadata-string=version={built['version']}",
        "--add-metadata=ostree.bootable=true",
        f"--add-metadata-string=ostree.linux={built['kver']}",
        f"--add-metadata=rpmostree.rpmdb.pkglist={_pkglist_gvariant(built['pkgs'])}",
        # Pulled by either ref: OSTree checks a pulled commit's ref binding.
        f"--bind-ref={manifest_ref(image['digest'])}",
    ]
    csum = _commit(repo, built["tree"], ref, f"{name} {arch}", built["ts"], meta)
    _ostree("refs", f"--repo={repo}", "--create", manifest_ref(image["digest"]), csum, "--force")
    return {
        "digest": index_digest, "manifest": image["digest"], "commit": csum, "ref": ref,
        "version": built["version"], "created": built["created"],
    }  # fmt: skip


def manifest_ref(digest: str) -> str:
    """The archive repo's ref of the commit an image manifest (``sha256:…``) is imported as."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"lab/manifest/{algorithm}/{hexdigest}"


def _build_image(repo: Path, layout: Layout, name: str, arches: Any, date_serial: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """An image name's new version: per arch a tree, its OCI image and its commit, and the image index (tagged in the
    layout) that lists them."""
    with tempfile.TemporaryDirectory(prefix="h2-img-") as tmp:
        built = {a: _image_arch(Path(tmp), layout, name, a, *date_serial[a]) for a in arches}
        index = layout.index([b["image"] for b in built.values()])
        layout.tag(ref_name(name), index)
        commits = {OCI_ARCH[a]: _commit_image(repo, name, a, b, index["digest"]) for a, b in built.items()}
    return {
        "index-digest": index["digest"],
        "layout-ref": ref_name(name),
        "signed-by": IMAGES[name].get("signed_by", DEFAULT_SIGNER),
        "arches": commits,
    }


# ---------------------------------------------------------------- server
def _catalogue_path(server_dir: Path) -> Path:
    return server_dir / "oci" / "catalogue.json"


def layout_path(server_dir: Path) -> Path:
    """The OCI image layout the registry's content is pushed from."""
    return server_dir / "oci" / "layout"


def catalogue(server_dir: Path) -> dict[str, Any]:
    """image name -> {index-digest, layout-ref, signed-by, arches: {oci arch: {digest, commit, ref, version, created}}}."""
    return json.loads(_catalogue_path(server_dir).read_text())["images"]


def write_package_sources(server_dir: Path) -> None:
    """The package catalogue, the repositories' keys and the COPR hub's files: cheap, written on every build."""
    pkg_path = server_dir / "packages" / "catalogue.json"
    pkg_path.parent.mkdir(parents=True, exist_ok=True)
    pkg_path.write_text(json.dumps(package_catalogue(), indent=2, sort_keys=True))
    (server_dir / "repos").mkdir(exist_ok=True)
    (server_dir / "repos" / "RPM-GPG-KEY-lab").write_text(RPM_KEY)
    for project, repo_name in COPR_PROJECTS.items():
        for release in RELEASES:
            served = server_dir / "coprs" / project / "repo" / f"fedora-{release}" / "dnf.repo"
            served.parent.mkdir(parents=True, exist_ok=True)
            served.write_text(copr_repo_file(project))
        results = server_dir / "results" / project
        results.mkdir(parents=True, exist_ok=True)
        (results / "pubkey.gpg").write_text(EXTRA_REPOS[repo_name]["key"])


def build_server(server_dir: Path) -> None:
    """Idempotent: create the archive repo, OCI catalogue and package catalogue if missing."""
    write_package_sources(server_dir)
    repo = server_dir / "ostree"
    cat_path = _catalogue_path(server_dir)
    if (
        (repo / "summary").exists()
        and cat_path.exists()
        and (server_dir / "packages/catalogue.json").exists()
        and (layout_path(server_dir) / "index.json").exists()
        and json.loads(cat_path.read_text()).get("format") == CATALOGUE_FORMAT
        and json.loads(cat_path.read_text()).get("tools") == tools_digest()
        and set(catalogue(server_dir)) == set(IMAGES)
    ):
        return
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    _ostree("init", f"--repo={repo}", "--mode=archive")
    for ref in REFS:
        release = ref.split("/")[1]
        for serial, date in enumerate(HISTORY[release]):
            commit_ref(repo, ref, f"{release}.{date}.0", date, serial)
    if layout_path(server_dir).exists():
        shutil.rmtree(layout_path(server_dir))
    layout = Layout(layout_path(server_dir))
    images: dict[str, Any] = {}
    for name, spec in IMAGES.items():
        images[name] = _build_image(repo, layout, name, spec["arches"], dict.fromkeys(spec["arches"], (spec["date"], 0)))
    _ostree("summary", f"--repo={repo}", "-u")
    cat_path.parent.mkdir(parents=True, exist_ok=True)
    cat_path.write_text(
        json.dumps({"format": CATALOGUE_FORMAT, "tools": tools_digest(), "images": images}, indent=2, sort_keys=True)
    )


def _next_date_serial(version: str) -> tuple[str, int]:
    _rel, date, serial = version.split(".")
    return date, int(serial) + 1


def _ref_version(repo: Path, ref: str) -> str:
    return _ostree("show", f"--repo={repo}", "--print-metadata-key=version", ref).strip("'")


def publish(server_dir: Path, target: str) -> dict[str, Any]:
    """Publish a new commit for an ostree ref, or a new digest for an image reference."""
    repo = server_dir / "ostree"
    if target in REFS:
        date, serial = _next_date_serial(_ref_version(repo, target))
        version = f"{target.split('/')[1]}.{date}.{serial}"
        csum = commit_ref(repo, target, version, date, serial)
        _ostree("summary", f"--repo={repo}", "-u")
        return {"kind": "ostree", "ref": target, "commit": csum, "version": version}
    name = target.removeprefix("docker://")
    name = name.split(":", 1)[1] if simcore.is_container_ref(name) else name
    cat_path = _catalogue_path(server_dir)
    cat = json.loads(cat_path.read_text())
    if name not in cat["images"]:
        raise KeyError(f"unknown ref or image: {target}")
    entry = cat["images"][name]
    arch_of = {o: a for a, o in OCI_ARCH.items()}
    arches = [arch_of[o] for o in entry["arches"]]
    entry = _build_image(
        repo, Layout(layout_path(server_dir)), name, arches, {arch_of[o]: _next_date_serial(cur["version"]) for o, cur in entry["arches"].items()}
    )  # fmt: skip
    cat["images"][name] = entry
    _ostree("summary", f"--repo={repo}", "-u")
    cat_path.write_text(json.dumps(cat, indent=2, sort_keys=True))
    return {"kind": "image", "image": name, "index-digest": entry["index-digest"], "arches": entry["arches"]}


# ---------------------------------------------------------------- hosts
def _server_dir_for(server_url: str, server_dir: Path | None) -> Path | None:
    if server_dir is not None:
        return server_dir
    parsed = urlparse(server_url)
    if parsed.scheme == "file":
        return Path(parsed.path)
    env = os.environ.get("IMMUTABLE_HOSTS_LAB_DIR")
    candidate = Path(env) / "server" if env else Path(__file__).resolve().parents[3] / ".lab" / "server"
    return candidate if (candidate / "ostree" / "config").exists() else None


def _fetch(root: Path, server: Path | None, url: str, ref: str, local_ref: str | None = None) -> None:
    repo = f"--repo={root / 'ostree/repo'}"
    if server is not None:
        if local_ref is None:
            _ostree("pull-local", repo, "--remote=fedora", str(server / "ostree"), ref)
        else:
            _ostree("pull-local", repo, str(server / "ostree"), ref)
    else:
        _ostree("pull", repo, "fedora", ref)
    if local_ref is not None:
        csum = _ostree("rev-parse", repo, ref)
        _ostree("refs", repo, "--create", local_ref, csum)
        _ostree("refs", repo, "--delete", ref)


def _write_remote(root: Path, url: str) -> None:
    remotes = root / "etc/ostree/remotes.d"
    remotes.mkdir(parents=True, exist_ok=True)
    (remotes / "fedora.conf").write_text(f'[remote "fedora"]\nurl={url}\ngpg-verify=false\n')


def _kargs() -> list[str]:
    return [f"--karg=root=UUID={uuid.uuid4()}", "--karg=rw", "--karg-append=rhgb", "--karg-append=quiet"]


# Profiles whose host boots the bootc image (bootc-only: the same image, without rpm-ostree on the host).
IMAGE_PROFILES = ("bootc", "bootc-only")


def provision_host(root: Path, profile: str, server_url: str, server_dir: Path | None = None) -> None:
    """Create a real sysroot in ``root`` (init-fs, os-init, remote, pull, deploy) for ``profile``.

    The repo is filled with ``pull-local`` from the server's directory when it is reachable on the
    machine (``server_dir``, a ``file://`` URL, ``$IMMUTABLE_HOSTS_LAB_DIR/server`` or ``<repo>/.lab/server``),
    else over HTTP from ``server_url``; the host's remote always points at ``server_url + "/ostree"``.
    """
    if profile not in (*PROFILE_REFS, *IMAGE_PROFILES):
        raise ValueError(f"unknown profile {profile}")
    root.mkdir(parents=True, exist_ok=True)
    url = server_url.rstrip("/") + "/ostree"
    if not (root / "ostree/repo/config").exists():
        _ostree("admin", "init-fs", "--modern", str(root))
    _ostree("admin", "os-init", f"--sysroot={root}", "fedora")
    _write_remote(root, url)
    server = _server_dir_for(server_url, server_dir)
    if profile in IMAGE_PROFILES:
        _deploy_image(root, server, url)
    else:
        ref = PROFILE_REFS[profile]
        _fetch(root, server, url, ref)
        _ostree("admin", "deploy", f"--sysroot={root}", "--os=fedora", *_kargs(), f"fedora:{ref}")
    catalogue = root / simcore.CATALOGUE_REL
    if not catalogue.exists():
        catalogue.parent.mkdir(parents=True, exist_ok=True)
        catalogue.write_text(json.dumps(package_catalogue(), sort_keys=True))


def _deploy_image(root: Path, server: Path | None, url: str) -> None:
    if server is None:
        raise RuntimeError("bootc provisioning needs the server directory (pass server_dir=)")
    cat = json.loads(_catalogue_path(server).read_text())
    entry = cat["images"][BOOTC_IMAGE]["arches"]["amd64"]
    _fetch(root, server, url, entry["ref"], local_ref=simcore.image_ref_for(BOOTC_IMAGE))
    with tempfile.NamedTemporaryFile("w", suffix=".origin", delete=False) as fh:
        fh.write(f"[origin]\ncontainer-image-reference={BOOTC_ORIGIN}\n")
        origin = fh.name
    try:
        _ostree("admin", "deploy", f"--sysroot={root}", "--os=fedora", *_kargs(), f"--origin-file={origin}", entry["commit"])
    finally:
        os.unlink(origin)


def cleanup_host(root: Path) -> None:
    """Clear FS_IMMUTABLE on deployment dirs so the host dir can be removed (safe to call on any dir)."""
    deploy = root / "ostree" / "deploy"
    if deploy.exists():
        subprocess.run(["chattr", "-R", "-i", str(deploy)], capture_output=True, check=False)
