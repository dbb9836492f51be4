"""OCI image layouts written with the standard library: the lab's OS images as real, reproducible OCI images.

A :class:`Layout` is an OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/sha256/``) that
``skopeo copy --all oci:DIR:REF docker://…`` pushes as it is. Each image is one layer, a deterministic tar
(sorted names, mtime 0, owner 0:0, numeric) of a tree, gzip'd without a name or time; its config's
``rootfs.diff_ids`` is the sha256 of the uncompressed tar and the manifest's layer digest that of the ``.tar.gz``.
An image index per tag lists the per-arch manifests with their platforms; ``index.json`` names each index with
``org.opencontainers.image.ref.name``, the ``REF`` of ``oci:DIR:REF``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree_tar(tree: Path) -> bytes:
    """A reproducible tar of ``tree``: sorted entries, mtime 0, owner 0:0, no user or group names."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(tree):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(Path(dirpath) / name)
        for path in sorted(entries, key=lambda p: p.relative_to(tree).as_posix()):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(tree).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.pax_headers = {}
            if info.isfile():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    return out.getvalue()


class Layout:
    """One OCI image layout directory; blobs are content-addressed, so writing one twice is harmless."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        marker = path / "oci-layout"
        if not marker.exists():
            marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}) + "\n")
        if not (path / "index.json").exists():
            self._write_index({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []})

    def put(self, data: bytes, media_type: str) -> dict[str, Any]:
        digest = sha256(data)
        blob = self.path / "blobs" / "sha256" / digest.split(":", 1)[1]
        if not blob.exists():
            tmp = blob.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(blob)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def blob(self, digest: str) -> bytes:
        return (self.path / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()

    def image(
        self, tree: Path, architecture: str, labels: dict[str, str], created: str, variant: str | None = None
    ) -> dict[str, Any]:
        """One single-layer image of ``tree``; returns its manifest's descriptor with the platform, and the
        manifest and config documents (``manifest``, ``config`` keys) as written."""
        raw = tree_tar(tree)
        layer = self.put(gzip.compress(raw, mtime=0), MEDIA_LAYER)
        platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
        config_doc = {
            **platform,
            "created": created,
            "config": {"Labels": dict(sorted(labels.items()))},
            "rootfs": {"type": "layers", "diff_ids": [sha256(raw)]},
            "history": [{"created": created, "created_by": "immutable-hosts lab (ostree_content)"}],
        }
        config_bytes = canonical(config_doc)
        config = self.put(config_bytes, MEDIA_CONFIG)
        manifest_doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config, "layers": [layer]}
        manifest_bytes = canonical(manifest_doc)
        descriptor = self.put(manifest_bytes, MEDIA_MANIFEST)
        return {
            **descriptor,
            "platform": platform,
            "manifest": manifest_bytes.decode(),
            "config": config_bytes.decode(),
            "diff_id": sha256(raw),
        }

    def index(self, manifests: list[dict[str, Any]]) -> dict[str, Any]:
        """An image index of per-arch manifest descriptors (extra keys of :meth:`image` dropped)."""
        entries = [{k: m[k] for k in ("mediaType", "digest", "size", "platform")} for m in manifests]
        return self.put(canonical({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}), MEDIA_INDEX)

    def tag(self, ref_name: str, descriptor: dict[str, Any]) -> None:
        """Point ``ref_name`` (the REF of ``oci:DIR:REF``) at ``descriptor``, replacing what it named before."""
        index = json.loads((self.path / "index.json").read_text())
        kept = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != ref_name]
        kept.append({**descriptor, "annotations": {REF_NAME: ref_name}})
        index["manifests"] = sorted(kept, key=lambda m: m["annotations"][REF_NAME])
        self._write_index(index)

    def resolve(self, ref_name: str) -> dict[str, Any] | None:
        index = json.loads((self.path / "index.json").read_text())
        return next((m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == ref_name), None)

    def _write_index(self, index: dict[str, Any]) -> None:
        tmp = self.path / "index.json.tmp"
        tmp.write_text(json.dumps(index, indent=2) + "\n")
        tmp.replace(self.path / "index.json")


def ref_name(image: str) -> str:
    """The layout ref of an image name: ``quay.io/fedora/fedora-silverblue:42`` -> ``quay.io_fedora_fedora-silverblue_42``
    (a layout ref is ``[A-Za-z0-9._-]`` here, so ``oci:DIR:REF`` never has a second colon)."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in image)
