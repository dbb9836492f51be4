"""Deployment engine shared by the rpm-ostree and bootc simulators: status documents and real deployments."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import simcore as sc
from simcore import Deployment, SimError

# typing only for type checkers, as in simcore.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FILTERED_META = {
    "rpmostree.rpmdb.pkglist",
    "rpmostree.advisories",
    "rpmostree.packages",
    "rpmostree.modules",
    "rpmostree.spec",
    "rpmostree.removed-base-packages",
    "rpmostree.replaced-base-packages",
    "rpmostree.replaced-base-remote-packages",
}
LAYER_GROUPS = ("packages", "overrides", "rpmostree", "modules")
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


# ---------------------------------------------------------------- origin helpers
def origin_ref(dep: Deployment) -> str:
    o = dep.origin.get("origin", {})
    return o.get("container-image-reference") or o.get("refspec") or o.get("baserefspec") or ""


def is_layered_origin(groups: dict[str, dict[str, str]]) -> bool:
    pk, ov, rp = groups.get("packages", {}), groups.get("overrides", {}), groups.get("rpmostree", {})
    return bool(
        sc.kf_list(pk.get("requested"))
        or sc.kf_list(pk.get("requested-local"))
        or sc.kf_list(pk.get("requested-local-fileoverride"))
        or sc.kf_list(ov.get("remove"))
        or sc.kf_list(ov.get("replace-local"))
        or ov.get("replace")
        or rp.get("regenerate-initramfs") == "true"
        or rp.get("initramfs-etc")
    )


def normalise_origin(groups: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Write refspec vs baserefspec the way rpm-ostree does; drop empty groups. A new deployment never inherits
    ``[libostree-transient]`` (the pin): libostree strips transient state from the origin it deploys."""
    out = {k: {kk: vv for kk, vv in v.items() if vv} for k, v in groups.items() if k != "libostree-transient"}
    o = out.setdefault("origin", {})
    ref = o.pop("refspec", None) or o.pop("baserefspec", None)
    if ref:
        o["baserefspec" if is_layered_origin(out) else "refspec"] = ref
    return {k: v for k, v in out.items() if v}


# ---------------------------------------------------------------- commits & packages
def base_checksum(dep_csum: str) -> str:
    info = sc.commit_info(dep_csum)
    if info.metadata.get("rpmostree.clientlayer") and info.parent:
        return info.parent
    return dep_csum


def commit_arch(csum: str) -> str:
    return str(sc.commit_info(csum).metadata.get("ostree.linux", "x86_64")).rsplit(".", 1)[-1]


def commit_release(csum: str) -> str:
    return str(sc.commit_info(csum).metadata.get("version", "41")).split(".", 1)[0]


def base_pkgs(base_csum: str) -> dict[str, str]:
    out = {}
    for name, epoch, ver, rel, arch in sc.commit_info(base_csum).metadata.get("rpmostree.rpmdb.pkglist", []):
        evr = f"{epoch}:{ver}" if epoch else ver
        out[name] = f"{name}-{evr}-{rel}.{arch}"
    return out


def repo_pkgs(base_csum: str) -> dict[str, str]:
    """What layering can install: Fedora's repositories, and the lab's others while a .repo file enables them."""
    rel = sc.load_catalogue()["releases"].get(commit_release(base_csum), {})
    pkgs = dict(rel.get(commit_arch(base_csum), {}).get("repo", {}))
    for source in extra_sources(base_csum).values():
        pkgs.setdefault(source["name"], source["nevra"])
    return pkgs


def enabled_repos() -> dict[str, dict[str, str]]:
    """id -> options of the repositories /etc/yum.repos.d enables (INI files as libdnf reads them; enabled by default)."""
    found: dict[str, dict[str, str]] = {}
    directory = sc.rpath("etc/yum.repos.d")
    for path in sorted(directory.glob("*.repo")) if directory.is_dir() else []:
        section = None
        for line in path.read_text(errors="replace").split("\n"):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                section = found.setdefault(stripped[1:-1].strip(), {})
            elif section is not None and "=" in stripped and not stripped.startswith(("#", ";")):
                key, _, value = stripped.partition("=")
                section[key.strip()] = value.strip()
    return {rid: opts for rid, opts in found.items() if opts.get("enabled", "1").lower() in ("1", "yes", "true", "on")}


def _expand(url: str, release: str, arch: str) -> str:
    return url.replace("$releasever", release).replace("$basearch", arch).rstrip("/")


def extra_sources(base_csum: str) -> dict[str, dict[str, Any]]:
    """name -> {name, nevra, repo (id), options, key} for the packages of the lab's other repositories that an
    enabled .repo file points at (by baseurl)."""
    release, arch = commit_release(base_csum), commit_arch(base_csum)
    extras = sc.load_catalogue().get("extra-repos", {})
    sources: dict[str, dict[str, Any]] = {}
    for rid, opts in enabled_repos().items():
        urls = {_expand(u, release, arch) for u in opts.get("baseurl", "").replace(",", " ").split()}
        for entry in extras.values():
            if _expand(entry["baseurl"], release, arch) in urls:
                for name, nevra in entry["packages"].get(release, {}).get(arch, {}).items():
                    sources.setdefault(name, {"name": name, "nevra": nevra, "repo": rid, "options": opts, "key": entry["key"]})
    return sources


def check_signatures(base_csum: str, names: list[str]) -> None:
    """libdnf's check of packages from a repository with gpgcheck: signed by a key the repository's gpgkey names."""
    sources = extra_sources(base_csum)
    for name in names:
        source = sources.get(name)
        if source is None or source["options"].get("gpgcheck", "0").lower() not in ("1", "yes", "true", "on"):
            continue
        if source["key"] is not None and any(
            _key_text(u) == source["key"].strip() for u in source["options"].get("gpgkey", "").split()
        ):
            continue
        nevra, rid = source["nevra"], source["repo"]
        raise SimError(
            f"package {nevra} cannot be verified and repo {rid} is GPG enabled: failed to lookup digest in keyring "
            f"for /var/cache/rpm-ostree/repomd/{rid}/packages/{nevra}.rpm"
        )


def _key_text(url: str) -> str | None:
    try:
        if url.startswith("file://"):
            return sc.rpath(url[len("file://") :].lstrip("/")).read_text().strip()
        if url.startswith(("http://", "https://")):
            import urllib.request

            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - the repository's own key URL
                return resp.read().decode(errors="replace").strip()
    except (OSError, ValueError):
        return None
    return None


def repo_timestamp(base_csum: str) -> int:
    rel = sc.load_catalogue()["releases"].get(commit_release(base_csum), {})
    return int(rel.get(commit_arch(base_csum), {}).get("repo-timestamp", 0))


# ---------------------------------------------------------------- status document
def filtered_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in FILTERED_META and k != "ostree.ref-binding"}


def remote_exists(name: str) -> bool:
    if (sc.rpath(f"etc/ostree/remotes.d/{name}.conf")).exists():
        return True
    cfg = sc.rpath("ostree/repo/config")
    return cfg.exists() and f'[remote "{name}"]' in cfg.read_text()


def _origin_keys(dep: Deployment, out: dict[str, Any]) -> None:
    pk, ov, rp = dep.origin.get("packages", {}), dep.origin.get("overrides", {}), dep.origin.get("rpmostree", {})
    out["requested-packages"] = sorted(sc.kf_list(pk.get("requested")))
    out["requested-local-packages"] = [x.split(":", 1)[-1] for x in sc.kf_list(pk.get("requested-local"))]
    out["requested-local-fileoverride-packages"] = [
        x.split(":", 1)[-1] for x in sc.kf_list(pk.get("requested-local-fileoverride"))
    ]
    out["requested-base-removals"] = sc.kf_list(ov.get("remove"))
    out["requested-base-local-replacements"] = [x.split(":", 1)[-1] for x in sc.kf_list(ov.get("replace-local"))]
    out["regenerate-initramfs"] = rp.get("regenerate-initramfs") == "true"
    if out["regenerate-initramfs"] or "initramfs-args" in rp or "initramfs-etc" in rp:
        out["initramfs-args"] = sc.kf_list(rp.get("initramfs-args"))
        out["initramfs-etc"] = sc.kf_list(rp.get("initramfs-etc"))
    if ov.get("replace"):
        out["requested-base-remote-replacements"] = [[e.split(",")[0], e.split(",")[1:]] for e in sc.kf_list(ov.get("replace"))]


def _origin_source_keys(dep: Deployment, base: str, out: dict[str, Any]) -> None:
    ref = origin_ref(dep)
    if sc.is_container_ref(ref):
        out["container-image-reference"] = ref
        digest = sc.commit_info(base).metadata.get("ostree.manifest-digest")
        if digest:
            out["container-image-reference-digest"] = digest
        return
    out["origin"] = ref
    remote = ref.split(":", 1)[0] if ":" in ref else ""
    if remote and not remote_exists(remote):
        out["remote-error"] = f'Remote "{remote}" not found'
    elif len(ref) != 64:
        out["gpg-enabled"] = False
    local = sc.resolve_rev(ref) if len(ref) != 64 else None
    if local and local != base:
        info = sc.commit_info(local)
        out["pending-base-checksum"] = local
        if "version" in info.metadata:
            out["pending-base-version"] = info.metadata["version"]
        out["pending-base-timestamp"] = info.timestamp


def deployment_doc(dep: Deployment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": dep.id,
        "osname": dep.osname,
        "checksum": dep.checksum,
        "serial": dep.serial,
        "booted": dep.booted,
        "staged": dep.staged,
        "pinned": dep.pinned,
        "unlocked": dep.unlocked,
    }
    _origin_keys(dep, out)
    info = sc.commit_info(dep.checksum)
    base = base_checksum(dep.checksum)
    binfo = sc.commit_info(base)
    out["base-commit-meta"] = filtered_meta(binfo.metadata)
    if base != dep.checksum:
        out["base-checksum"] = base
        if "version" in binfo.metadata:
            out["base-version"] = binfo.metadata["version"]
        out["base-timestamp"] = binfo.timestamp
        out["layered-commit-meta"] = filtered_meta(info.metadata)
    if "version" in info.metadata:
        out["version"] = info.metadata["version"]
    out["timestamp"] = info.timestamp
    _origin_source_keys(dep, base, out)
    if "ostree.endoflife" in binfo.metadata:
        out["endoflife"] = binfo.metadata["ostree.endoflife"]
    meta = info.metadata
    out["packages"] = sorted(meta.get("rpmostree.packages", []))
    out["base-removals"] = [sc.nevra_tuple(n) for n in meta.get("rpmostree.removed-base-packages", [])]
    out["base-local-replacements"] = [
        [sc.nevra_tuple(new), sc.nevra_tuple(old)] for new, old in meta.get("rpmostree.replaced-base-packages", [])
    ]
    out["base-remote-replacements"] = {}
    if dep.staged and dep.finalization_locked:
        out["finalization-locked"] = True
    if dep.origin.get("rpmostree", {}).get("ex-cliwrap") == "true":
        out["cliwrap"] = True
    return out


# ---------------------------------------------------------------- server catalogue / pulls
def remote_url(name: str = "fedora") -> str:
    for path in (sc.rpath(f"etc/ostree/remotes.d/{name}.conf"), sc.rpath("ostree/repo/config")):
        if path.exists():
            grp = sc.read_keyfile(path).get(f'remote "{name}"')
            if grp and grp.get("url"):
                return grp["url"]
    raise SimError(f'Remote "{name}" not found')


def proxy_reference(ref: sc.ImageRef) -> str:
    """The containers/image reference ostree-ext opens for an image origin (``registry`` is ``docker://``)."""
    return f"docker://{ref.name}" if ref.transport == "registry" else f"{ref.transport}:{ref.name}"


def manifest_ref(digest: str) -> str:
    """The image server's OSTree ref of the commit a manifest is imported as (see ostree_content.manifest_ref)."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"lab/manifest/{algorithm}/{hexdigest}"


def resolve_image(imgref: str, arch: str) -> dict[str, Any]:
    """Open ``imgref`` through the host's containers-image proxy, as ostree-ext does: the policy, the signatures,
    the registry's TLS and the credentials are checked for real, and the manifest for ``arch`` is chosen from the
    index. Returns {digest (what the image was opened by), manifest (this arch's), ref, version, created,
    architecture}."""
    import hashlib

    from imageproxy import ImageProxy, ProxyError, policy_default_is_insecure

    ref = sc.parse_image_ref(imgref)
    if ref.sigverify == "containerPolicy" and policy_default_is_insecure():
        raise SimError(
            "Preparing import: Fetching manifest: containers-policy.json specifies a default of "
            "`insecureAcceptAnything`; refusing usage"
        )
    try:
        with ImageProxy(OCI_ARCH.get(arch, arch)) as proxy:
            image = proxy.open_image(proxy_reference(ref))
            digest, manifest = proxy.manifest(image)
            config = proxy.config(image)
    except ProxyError as exc:
        raise SimError(f"Creating importer: Failed to invoke skopeo proxy method {exc.method}: remote error: {exc}") from None
    arch_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    labels = (config.get("config") or {}).get("Labels") or {}
    return {
        "digest": digest,
        "manifest": arch_digest,
        "ref": manifest_ref(arch_digest),
        "version": labels.get("org.opencontainers.image.version", ""),
        "created": config.get("created", ""),
        "architecture": config.get("architecture", OCI_ARCH.get(arch, arch)),
    }


def pull_image(imgref: str, arch: str) -> dict[str, Any]:
    """Fetch an image (:func:`resolve_image`) and import it: the import of its layers into OSTree is the simulated
    part, a pull of the commit the image server holds for that manifest."""
    entry = resolve_image(imgref, arch)
    ref = sc.parse_image_ref(imgref)
    local = sc.image_ref_for(ref.name)
    pulled = sc.ostree("pull", sc.repo_arg(), "fedora", entry["ref"], check=False)
    commit = sc.resolve_rev(f"fedora:{entry['ref']}") if pulled.returncode == 0 else None
    if commit is None:
        # Not one of the lab's own images (built from one, elsewhere): import its layers, as ostree-ext does.
        from layers import import_image

        commit = import_image(proxy_reference(ref), OCI_ARCH.get(arch, arch), entry, local)
    else:
        sc.ostree("refs", sc.repo_arg(), "--delete", local, check=False)
        sc.ostree("refs", sc.repo_arg(), "--create", local, commit)
        sc.ostree("refs", sc.repo_arg(), "--delete", f"fedora:{entry['ref']}", check=False)
    return {**entry, "commit": commit}


def pull_ref(refspec: str) -> str:
    remote, _, ref = refspec.rpartition(":")
    if remote:
        sc.ostree("pull", sc.repo_arg(), remote, ref)
    csum = sc.resolve_rev(refspec)
    if csum is None:
        raise SimError(f"No such branch '{refspec}'")
    return csum


# ---------------------------------------------------------------- layering
def _state_hash(groups: dict[str, dict[str, str]], base: str) -> str:
    return hashlib.sha512((base + json.dumps(groups, sort_keys=True)).encode()).hexdigest()


def _gv_strs(items: list[str]) -> str:
    return "@as [" + ", ".join("'" + i.replace("'", "\\'") + "'" for i in items) + "]"


def layer_plan(groups: dict[str, dict[str, str]], base: str) -> dict[str, Any]:
    """Which requests are active, what is added/removed/replaced on top of ``base``."""
    provided, repo = base_pkgs(base), repo_pkgs(base)
    pk, ov = groups.get("packages", {}), groups.get("overrides", {})
    active = sorted(p for p in sc.kf_list(pk.get("requested")) if p not in provided)
    removed = [provided[n] for n in sc.kf_list(ov.get("remove")) if n in provided]
    local = [x.split(":", 1)[-1] for x in sc.kf_list(pk.get("requested-local"))]
    replaced = []
    for entry in sc.kf_list(ov.get("replace-local")):
        new = entry.split(":", 1)[-1]
        name = sc.split_nevra(new)[0]
        replaced.append([new, provided.get(name, new)])
    return {
        "active": active,
        "added": {p: repo.get(p, p) for p in active},
        "local": local,
        "removed": removed,
        "replaced": replaced,
    }


def build_layered_commit(groups: dict[str, dict[str, str]], base: str) -> str:
    plan = layer_plan(groups, base)
    binfo = sc.commit_info(base)
    tmpdir = sc.rpath("ostree/repo/tmp")
    with tempfile.TemporaryDirectory(prefix="rpmostree-sim-", dir=tmpdir) as tmp:
        tree = Path(tmp) / "tree"
        sc.ostree("checkout", sc.repo_arg(), "-U", base, str(tree))
        for name, nevra in [
            *plan["added"].items(),
            *[(sc.split_nevra(n)[0], n) for n in plan["local"]],
            *[(sc.split_nevra(new)[0], new) for new, _old in plan["replaced"]],
        ]:
            d = tree / "usr/share/doc" / name
            d.mkdir(parents=True, exist_ok=True)
            (d / "lab-package").write_text(nevra + "\n")
        for nevra in plan["removed"]:
            shutil.rmtree(tree / "usr/share/doc" / sc.split_nevra(nevra)[0], ignore_errors=True)
        repos = (
            f"[{{'id': <'fedora'>, 'timestamp': <uint64 {repo_timestamp(base)}>}}, "
            f"{{'id': <'updates'>, 'timestamp': <uint64 {binfo.timestamp}>}}]"
        )
        replaced = "@a(ss) [" + ", ".join(f"('{n}', '{o}')" for n, o in plan["replaced"]) + "]"
        args = [
            "commit",
            sc.repo_arg(),
            "--orphan",
            f"--parent={base}",
            "--subject=rpm-ostree layered commit",
            "--add-metadata=rpmostree.clientlayer=true",
            "--add-metadata=rpmostree.clientlayer_version=uint32 6",
            f"--add-metadata-string=rpmostree.state-sha512={_state_hash(groups, base)}",
            f"--add-metadata=rpmostree.rpmmd-repos={repos}",
            f"--add-metadata=rpmostree.packages={_gv_strs(plan['active'])}",
            f"--add-metadata=rpmostree.removed-base-packages={_gv_strs(plan['removed'])}",
            f"--add-metadata=rpmostree.replaced-base-packages={replaced}",
            f"--timestamp={_now_stamp()}",
            str(tree),
        ]
        if "version" in binfo.metadata:
            args.insert(-1, f"--add-metadata-string=version={binfo.metadata['version']}")
        return sc.ostree(*args).stdout.strip()


def _now_stamp() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S +0000")


# ---------------------------------------------------------------- deploying
def deploy(
    osname: str,
    groups: dict[str, dict[str, str]],
    base: str,
    *,
    kargs: list[str] | None = None,
    lock: bool = False,
    override_commit: str | None = None,
) -> Deployment:
    """Create a real new deployment stacked on deployments[0] (staged when a booted one exists)."""
    groups = normalise_origin(groups)
    if override_commit:
        groups.setdefault("origin", {})["override-commit"] = override_commit
    csum = build_layered_commit(groups, base) if is_layered_origin(groups) else base
    before = sc.list_deployments()
    if kargs is None and before:
        # Changes stack on deployments[0]: the new deployment keeps its kernel arguments (plain `ostree admin
        # deploy` would take the booted deployment's instead).
        kargs = sc.kargs_of(before[0]) or None
    with tempfile.NamedTemporaryFile("w", suffix=".origin", delete=False, dir=sc.run_dir()) as fh:
        fh.write(sc.write_keyfile(groups))
    karg_args = (
        ["--karg-none", *[f"--karg-append={k}" for k in kargs if not k.startswith("ostree=")]] if kargs is not None else []
    )
    try:
        sc.admin("deploy", f"--os={osname}", "--retain", f"--origin-file={fh.name}", *karg_args, csum)
    finally:
        Path(fh.name).unlink(missing_ok=True)
    _drop_previous_staged(before)
    deps = sc.list_deployments()
    new = deps[0]
    if sc.booted_deployment(deps) is not None:
        record_staged(new, lock)
    return sc.list_deployments()[0]


def _drop_previous_staged(before: list[Deployment]) -> None:
    old = next((d for d in before if d.staged), None)
    if old is None:
        return
    for d in sc.list_deployments():
        if d.name == old.name and d.index != 0:
            sc.admin("undeploy", str(d.index))
            return


def record_staged(dep: Deployment, lock: bool) -> None:
    sc.write_state("staged", {"deployment": dep.name, "locked": lock})
    marker = sc.rpath(sc.UNFINALIZED_REL)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"deployment": dep.name, "boot_id": sc.boot_id()}))
    lockfile = sc.rpath("run/ostree/staged-deployment-locked")
    if lock:
        lockfile.parent.mkdir(parents=True, exist_ok=True)
        lockfile.write_text("")
    else:
        lockfile.unlink(missing_ok=True)


def clear_staged() -> None:
    sc.write_state("staged", None)
    sc.rpath(sc.UNFINALIZED_REL).unlink(missing_ok=True)
    sc.rpath("run/ostree/staged-deployment-locked").unlink(missing_ok=True)


def undeploy_names(names: set[str]) -> None:
    for d in reversed(sc.list_deployments()):
        if d.name in names:
            sc.admin("undeploy", str(d.index))


# ---------------------------------------------------------------- boot cycle
def finalize_at_shutdown() -> str:
    """What ostree-finalize-staged does at shutdown: drop a locked staged deployment, prune like ostree."""
    deps = sc.list_deployments()
    booted = sc.booted_deployment(deps)
    staged = next((d for d in deps if d.staged), None)
    if staged is not None and staged.finalization_locked:
        undeploy_names({staged.name})
        clear_staged()
        return "discarded"
    clear_staged()
    if staged is None or booted is None:
        return "nothing"
    keep = {staged.name, booted.name}
    drop = {d.name for d in deps if d.osname == staged.osname and not d.pinned and d.name not in keep}
    undeploy_names(drop)
    return "finalized"


def mark_booted() -> Deployment | None:
    """At boot: discard a never-finalised staged deployment, then deployments[0] becomes the booted one."""
    marker = sc.rpath(sc.UNFINALIZED_REL)
    if marker.exists():
        rec = json.loads(marker.read_text())
        sc.write_state("booted", None)
        deps = sc.list_deployments()
        if deps and deps[0].name == rec["deployment"] and len(deps) > 1:
            undeploy_names({rec["deployment"]})
        marker.unlink()
    deps = sc.list_deployments()
    if not deps:
        return None
    dep = deps[0]
    sc.write_state("booted", {"deployment": dep.name, "osname": dep.osname})
    write_ostree_booted(dep)
    return dep


def write_ostree_booted(dep: Deployment) -> None:
    """/run/ostree-booted with backing-root-device-inode, so libostree >= 2024.2 sees ``dep`` as booted."""
    st = dep.path.stat()
    target = sc.rpath("run/ostree-booted")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(".ostree-booted.tmp")
    tmp.write_bytes(sc.encode_booted_metadata(st.st_dev, st.st_ino))
    tmp.replace(target)


def reset_run_state() -> None:
    """What a reboot does to /run: volatile daemon state (transaction, driver, cached update, config) is gone."""
    for name in ("transaction", "update-driver", "cached-update", "config", "staged", "booted"):
        sc.write_state(name, None)
