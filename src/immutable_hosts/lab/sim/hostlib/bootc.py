"""Lab simulator of ``bootc`` (contract §4). Stdlib only plus the real ``ostree`` CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import engine as en
import simcore as sc
from simcore import Deployment, SimError

ARCH_OCI = {"x86_64": "amd64", "aarch64": "arm64"}


def image_reference(ref: str) -> dict[str, Any]:
    img = sc.parse_image_ref(ref)
    out: dict[str, Any] = {"image": img.name, "transport": img.transport}
    if img.sigverify == "containerPolicy":
        out["signature"] = "containerPolicy"
    elif img.sigverify.startswith("ostreeRemote:"):
        out["signature"] = {"ostreeRemote": img.sigverify.split(":", 1)[1]}
    return out


def image_status(dep: Deployment) -> dict[str, Any] | None:
    ref = en.origin_ref(dep)
    if not sc.is_container_ref(ref):
        return None
    meta = sc.commit_info(dep.checksum).metadata
    config = json.loads(meta.get("ostree.container.image-config", "{}") or "{}")
    labels = config.get("config", {}).get("Labels", {})
    return {
        "image": image_reference(ref),
        "version": labels.get("org.opencontainers.image.version"),
        "timestamp": config.get("created"),
        "imageDigest": meta.get("ostree.manifest-digest", ""),
        "architecture": config.get("architecture", ARCH_OCI.get(en.commit_arch(dep.checksum), "amd64")),
    }


def boot_entry(dep: Deployment | None) -> dict[str, Any] | None:
    if dep is None:
        return None
    incompatible = any(g in dep.origin for g in en.LAYER_GROUPS)
    cached = sc.read_state("bootc-cached-update") if dep.booted else None
    return {
        "image": None if incompatible else image_status(dep),
        "cachedUpdate": None if incompatible else cached,
        "incompatible": incompatible,
        "pinned": dep.pinned,
        "softRebootCapable": False,
        "downloadOnly": dep.staged and dep.finalization_locked,
        "store": "ostreeContainer",
        "ostree": {"checksum": dep.checksum, "deploySerial": dep.serial, "stateroot": dep.osname},
        "composefs": None,
    }


def host_doc(booted_only: bool) -> dict[str, Any]:
    deps = sc.list_deployments()
    booted = sc.booted_deployment(deps)
    staged = next((d for d in deps if d.staged), None)
    same_os = [d for d in deps if booted and d.osname == booted.osname]
    rollback = next((d for d in same_os if booted and d.name != booted.name and not d.staged), None)
    others = [d for d in deps if d not in (booted, staged, rollback)]
    status: dict[str, Any] = {
        "staged": None if booted_only else boot_entry(staged),
        "booted": boot_entry(booted),
        "rollback": None if booted_only else boot_entry(rollback),
        "rollbackQueued": bool(rollback and booted and rollback.index < booted.index),
        "type": None,
        "usrOverlay": None,
        "readOnly": False,
    }
    if others and not booted_only:
        status["otherDeployments"] = [boot_entry(d) for d in others]
    spec_src = status["staged"] or status["booted"]
    spec_image = spec_src["image"]["image"] if spec_src and spec_src["image"] else None
    if status["booted"] and status["booted"]["image"]:
        status["type"] = "bootcHost"
    if booted and booted.unlocked != "none":
        status["usrOverlay"] = {
            "accessMode": "readWrite",
            "persistence": "persistent" if booted.unlocked == "hotfix" else "transient",
        }
    return {
        "apiVersion": "org.containers.bootc/v1",
        "kind": "BootcHost",
        "metadata": {"name": "host"},
        "spec": {"image": spec_image, "bootOrder": "rollback" if status["rollbackQueued"] else "default"},
        "status": status,
    }


def to_yaml(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = []
        for k, v in value.items():
            if isinstance(v, dict | list) and v:
                lines.append(f"{pad}{k}:\n{to_yaml(v, indent + 1)}")
            else:
                lines.append(f"{pad}{k}: {to_yaml(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"{pad}- " + to_yaml(v, indent + 1).lstrip() for v in value) if value else "[]"
    return json.dumps(value)


def cmd_status(args: list[str]) -> int:
    fmt = "json" if "--json" in args else None
    booted_only = "--booted" in args
    for a in args:
        if a.startswith("--format="):
            fmt = a.split("=", 1)[1]
        if a.startswith("--format-version=") and a.split("=", 1)[1] not in ("0", "1"):
            raise SimError(f"Unsupported format version: {a.split('=', 1)[1]}")
    if fmt is None:
        fmt = "humanreadable" if sys.stdout.isatty() else "yaml"
    doc = host_doc(booted_only)
    if fmt == "json":
        print(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    elif fmt == "yaml":
        print(to_yaml(doc))
    else:
        print_human(doc)
    return 0


def print_human(doc: dict[str, Any]) -> None:
    st = doc["status"]
    for label, key in (("Staged image", "staged"), ("Booted image", "booted"), ("Rollback image", "rollback")):
        entry = st.get(key)
        if not entry:
            continue
        img = entry["image"]
        mark = "●" if key == "booted" else " "
        print(f"{mark} {label}: {img['image']['image'] if img else '(not container image)'}")
        if img:
            print(f"        Digest: {img['imageDigest']} ({img['architecture']})")
            print(f"       Version: {img['version']} ({img['timestamp']})")
        print()


def _merge() -> tuple[list[Deployment], Deployment]:
    deps = sc.list_deployments()
    booted = sc.booted_deployment(deps)
    if booted is None:
        raise SimError("Not in a booted bootc/ostree deployment")
    return deps, deps[0] if deps[0].osname == booted.osname else booted


def _check_compatible(dep: Deployment) -> None:
    if any(g in dep.origin for g in en.LAYER_GROUPS):
        raise SimError(
            "Deployment contains local rpm-ostree modifications; cannot upgrade via bootc. "
            "You can run `rpm-ostree reset` to undo the modifications."
        )


def _stage(dep: Deployment, imgref: str, *, lock: bool) -> Deployment:
    arch = en.commit_arch(dep.checksum)
    entry = en.pull_image(imgref, arch)
    groups = {"origin": {"container-image-reference": imgref}}
    new = en.deploy(dep.osname, groups, entry["commit"], lock=lock)
    print(f"Queued for next boot: {sc.parse_image_ref(imgref).name}")
    print(f"  Version: {entry['version']}")
    print(f"  Digest: {entry['digest']}")
    reboot_required(entry["digest"])
    return new


def reboot_required(digest: str) -> None:
    path = sc.rpath("run/reboot-required")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"bootc: Reboot required for image: {digest}\n")


def _apply() -> None:
    if sc.root() == Path("/"):
        os.execvp("systemctl", ["systemctl", "reboot"])  # noqa: S606 - argv list, fixed binary
    en.finalize_at_shutdown()
    en.reset_run_state()
    en.mark_booted()


def cmd_upgrade(args: list[str]) -> int:
    if "--check" in args and "--apply" in args:
        raise SimError("the argument '--check' cannot be used with '--apply'")
    deps, merge = _merge()
    staged = next((d for d in deps if d.staged), None)
    if "--from-downloaded" in args:
        if staged is None:
            raise SimError("No staged deployment found")
        en.record_staged(staged, False)
        print("Staged deployment will now be applied on reboot")
        return 0
    _check_compatible(merge)
    ref = en.origin_ref(merge)
    if not sc.is_container_ref(ref):
        raise SimError("No image source specified")
    entry = en.resolve_image(ref, en.commit_arch(merge.checksum))
    name = sc.parse_image_ref(ref).name
    current = sc.commit_info(merge.checksum).metadata.get("ostree.manifest-digest")
    if "--check" in args:
        return _check(name, entry, current)
    if entry["digest"] == current:
        if staged is not None and "--apply" in args:
            _apply()
        print("No update available." if staged is None else "Staged update present, not changed")
        return 0
    with sc.transaction("upgrade", merge.osname):
        _stage(merge, ref, lock="--download-only" in args)
    if "--download-only" in args:
        print("Image downloaded, but will not be applied on reboot")
    if "--apply" in args:
        _apply()
    return 0


def _check(name: str, entry: dict[str, Any], current: str | None) -> int:
    if entry["digest"] == current:
        print(f"No changes in: {name}")
        sc.write_state("bootc-cached-update", None)
        return 0
    print(f"Update available for: {name}")
    print(f"  Version: {entry['version']}")
    print(f"  Digest: {entry['digest']}")
    print("Total new layers: 1    Size: 1.5 MB\nRemoved layers:   1    Size: 1.5 MB\nAdded layers:     1    Size: 1.5 MB")
    sc.write_state(
        "bootc-cached-update",
        {
            "image": None,
            "version": entry["version"],
            "timestamp": entry["created"],
            "imageDigest": entry["digest"],
            "architecture": "amd64",
        },
    )
    return 0


SWITCH_FLAGS = {
    "--enforce-container-sigpolicy",
    "--apply",
    "--soft-reboot",
    "--retain",
    "--quiet",
    "--mutate-in-place",
    "--no-signature-verification",
}


class ClapUsage(SimError):
    """A command line clap refuses: exit code 2."""


def cmd_switch(args: list[str]) -> int:
    # clap: `--transport VALUE` or `--transport=VALUE`; `-h`/`--help` print help and exit 0; `--` ends the options;
    # any other argument starting with '-' is refused with exit code 2.
    transport, pos, rest = "registry", [], iter(args)
    for arg in rest:
        if arg == "--":
            pos.extend(rest)
            break
        if arg in ("-h", "--help"):
            print("Target a new container image reference to boot\n\nUsage: bootc switch [OPTIONS] <TARGET>")
            return 0
        if arg == "--transport":
            transport = next(rest, "")
        elif arg.startswith("--transport="):
            transport = arg.split("=", 1)[1]
        elif arg in SWITCH_FLAGS:
            continue
        elif arg.startswith("-") and arg != "-":
            raise ClapUsage(f"unexpected argument '{arg}' found")
        else:
            pos.append(arg)
    if len(pos) != 1:
        raise ClapUsage("the following required arguments were not provided: <TARGET>")
    target = pos[0]
    prefix = "ostree-image-signed" if "--enforce-container-sigpolicy" in args else "ostree-unverified-image"
    imgref = (
        f"ostree-unverified-registry:{target}"
        if prefix == "ostree-unverified-image" and transport == "registry"
        else f"{prefix}:{'docker://' if transport == 'registry' else transport + ':'}{target}"
    )
    _deps, merge = _merge()
    cur = en.origin_ref(merge)
    if sc.is_container_ref(cur) and image_reference(cur) == image_reference(imgref):
        print("Image specification is unchanged.")
        return 0
    with sc.transaction("switch", merge.osname):
        _stage(merge, imgref, lock=False)
    if "--apply" in args:
        _apply()
    return 0


def cmd_rollback(args: list[str]) -> int:
    deps, _merge_dep = _merge()
    booted = sc.booted_deployment(deps)
    assert booted is not None
    same = [d for d in deps if d.osname == booted.osname and not d.staged]
    staged = [d for d in deps if d.staged]
    with sc.transaction("rollback", booted.osname):
        if staged:
            en.undeploy_names({d.name for d in staged})
            en.clear_staged()
        same = [d for d in sc.list_deployments() if d.osname == booted.osname]
        rollback = next((d for d in same if d.name != booted.name), None)
        if rollback is None:
            raise SimError("No rollback available")
        import rpm_ostree

        if same[0].name != booted.name:
            print("notice: Reverting queued rollback state")
            rpm_ostree.set_default(next(d for d in same if d.name == booted.name))
            print("Next boot: current deployment")
        else:
            rpm_ostree.set_default(rollback)
            print("Next boot: rollback deployment")
    reboot_required("rollback")
    if "--apply" in args:
        _apply()
    return 0


def main(argv: list[str]) -> int:
    cmds = {"status": cmd_status, "upgrade": cmd_upgrade, "update": cmd_upgrade, "switch": cmd_switch, "rollback": cmd_rollback}
    if not argv or argv[0] not in cmds:
        print("error: unrecognized subcommand" if argv else "Usage: bootc <COMMAND>", file=sys.stderr)
        return 2 if argv else 0
    try:
        if argv[0] != "status" and os.geteuid() != 0:
            raise SimError("This command must be executed as the root user")
        return cmds[argv[0]](argv[1:])
    except SimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ClapUsage) else 1


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
