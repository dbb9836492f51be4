"""Importing a container image's layers into OSTree, as ostree-ext does, for an image the image server has no commit of.

The lab's own OS images are imported on the image server when the lab is built (``lab/manifest/sha256/HEX``); an
image built from them (an immutable.hosts image context, built with Podman and pushed to the lab registry) is not,
so its layers are fetched through the host's containers-image proxy and applied in order: OCI whiteouts
(``.wh.NAME``, ``.wh..wh..opq``) remove what a lower layer had, the image's ``/etc`` becomes the commit's
``/usr/etc`` (ostree-ext's mapping), and the package list (``rpmostree.rpmdb.pkglist``) is what the tree records
(``/usr/share/doc/NAME/lab-package``, where the lab's images and their simulated dnf record packages). The commit
carries the metadata ostree-ext gives an imported image: the manifest digest it was pulled by, its manifest and its
config.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import simcore as sc
from simcore import SimError

# typing only for type checkers, as in simcore.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.docker.image.rootfs.diff.tar.gzip")
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar", "application/vnd.docker.image.rootfs.diff.tar")
BOOTABLE_LABELS = ("containers.bootc", "ostree.bootable")


def layer_tar(media_type: str, blob: bytes) -> bytes:
    """The tar stream of a layer blob (gzip or plain; other compressions are refused)."""
    if media_type in GZIP_TYPES:
        return gzip.decompress(blob)
    if media_type in TAR_TYPES:
        return blob
    raise SimError(f"Importing: layer media type {media_type} is not supported here (gzip or uncompressed tar only)")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _inside(tree: Path, name: str) -> Path:
    """Where a layer entry goes, its parent resolved: never through a link that leaves the tree (a layer's absolute
    link is the image's, not the host's)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise SimError(f"Importing: layer entry {name!r} leaves the image's root")
    if not parts:
        return tree
    root = Path(os.path.realpath(tree))
    parent = Path(os.path.realpath(tree.joinpath(*parts[:-1])))
    if parent != root and root not in parent.parents:
        raise SimError(f"Importing: layer entry {name!r} goes through a link out of the image's root")
    return parent / parts[-1]


def _extract_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """tarfile's "tar" filter, except that a symbolic link may point anywhere: it is written, never followed here."""
    if member.issym():
        return member.replace(mode=0o777, deep=False)
    return tarfile.tar_filter(member, dest)


def apply_layer(tree: Path, data: bytes) -> None:
    """Apply one layer's tar to ``tree``: whiteouts first remove, then entries replace what they name."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = tar.getmembers()
        for member in members:
            path = _inside(tree, member.name)
            base = path.name
            if base == OPAQUE:
                for child in list(path.parent.iterdir()) if path.parent.is_dir() else []:
                    _remove(child)
            elif base.startswith(WHITEOUT):
                _remove(path.parent / base[len(WHITEOUT) :])
        for member in members:
            path = _inside(tree, member.name)
            if path.name.startswith(WHITEOUT) or path == tree:
                continue
            if not (member.isdir() and path.is_dir() and not path.is_symlink()):
                _remove(path)
            tar.extract(member, tree, numeric_owner=True, filter=_extract_filter)


def etc_to_usr_etc(tree: Path) -> None:
    """ostree-ext's mapping: the image's ``/etc`` is the commit's ``/usr/etc``, merged over what is already there."""
    etc = tree / "etc"
    if not etc.is_dir() or etc.is_symlink():
        return
    target = tree / "usr" / "etc"
    target.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(etc):
        rel = Path(dirpath).relative_to(etc)
        (target / rel).mkdir(exist_ok=True)
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            destination = target / rel / name
            _remove(destination)
            os.replace(Path(dirpath) / name, destination)
    shutil.rmtree(etc)


def tree_packages(tree: Path) -> list[str]:
    """The NEVRAs the tree records, one per ``usr/share/doc/NAME/lab-package``."""
    doc = tree / "usr/share/doc"
    found = []
    for record in sorted(doc.glob("*/lab-package")) if doc.is_dir() else []:
        nevra = record.read_text().strip()
        if nevra:
            found.append(nevra)
    return found


def tree_kernel(tree: Path) -> str:
    modules = tree / "usr/lib/modules"
    kernels = sorted(p.name for p in modules.iterdir() if (p / "vmlinuz").is_file()) if modules.is_dir() else []
    if len(kernels) != 1:
        raise SimError(f"Importing: expected one kernel in /usr/lib/modules, found {len(kernels)}")
    return kernels[0]


def import_image(proxy_ref: str, arch_name: str, entry: dict[str, Any], branch: str) -> str:
    """Fetch the layers of ``proxy_ref`` (opened by ``entry['digest']``, what :func:`engine.resolve_image` found) for
    ``arch_name`` (OCI arch) and commit the tree to ``branch`` of the host's repository; returns the commit."""
    from imageproxy import ImageProxy, ProxyError

    try:
        with ImageProxy(arch_name) as proxy:
            image = proxy.open_image(proxy_ref)
            digest, manifest_bytes = proxy.manifest(image)
            if digest != entry["digest"]:
                raise SimError(f"Importing: {proxy_ref} moved from {entry['digest']} to {digest} during the pull")
            config = proxy.config(image)
            manifest = json.loads(manifest_bytes)
            labels = (config.get("config") or {}).get("Labels") or {}
            if not any(str(labels.get(label, "")).lower() in ("1", "true") for label in BOOTABLE_LABELS):
                raise SimError(f"Importing: {proxy_ref} is not a bootable container image (no containers.bootc label)")
            with tempfile.TemporaryDirectory(prefix="rpmostree-import-", dir=sc.rpath("ostree/repo/tmp")) as tmp:
                tree = Path(tmp) / "tree"
                tree.mkdir()
                for layer in manifest.get("layers", []):
                    _value, blob = proxy.read("GetBlob", image, layer["digest"], int(layer["size"]))
                    if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
                        raise SimError(f"Importing: layer {layer['digest']} does not match its digest")
                    apply_layer(tree, layer_tar(layer.get("mediaType", ""), blob))
                etc_to_usr_etc(tree)
                kernel = tree_kernel(tree)
                created = str(config.get("created", ""))
                meta = [
                    f"--add-metadata-string=ostree.manifest-digest={digest}",
                    f"--add-metadata-string=ostree.manifest={manifest_bytes.decode()}",
                    f"--add-metadata-string=ostree.container.image-config={json.dumps(config, separators=(',', ':'))}",
                    "--add-metadata-string=ostree.importer.version=0.15.3",
                    "--add-metadata=ostree.bootable=true",
                    f"--add-metadata-string=ostree.linux={kernel}",
                    f"--add-metadata=rpmostree.rpmdb.pkglist={sc.pkglist_gvariant(tree_packages(tree))}",
                ]
                version = labels.get("org.opencontainers.image.version")
                if version:
                    meta.append(f"--add-metadata-string=version={version}")
                if len(created) >= 19:
                    meta.append(f"--timestamp={created[:10]} {created[11:19]} +0000")
                done = sc.ostree("commit", sc.repo_arg(), f"--branch={branch}", f"--subject={proxy_ref}", *meta, str(tree))
                return done.stdout.strip()
    except ProxyError as exc:
        raise SimError(f"Importing: Failed to invoke skopeo proxy method {exc.method}: remote error: {exc}") from None
