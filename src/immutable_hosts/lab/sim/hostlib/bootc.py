"""Lab simulator of ``bootc`` (contract §4). Stdlib only plus the real ``ostree`` CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path

import engine as en
import simcore as sc
from simcore import Deployment, SimError

# typing only for type checkers, as in simcore.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ARCH_OCI = {"x86_64": "amd64", "aarch64": "arm64"}


class ClapUsage(SimError):
    """A command line clap refuses: exit code 2."""


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


UPGRADE_FLAGS = {"--quiet", "--check", "--apply", "--download-only", "--from-downloaded"}
UPGRADE_VALUES = {"--soft-reboot", "--tag"}
# clap's conflicts of `bootc upgrade` (cli.rs UpgradeOpts): the first flag given is named first.
UPGRADE_CONFLICTS = (
    ("--check", "--apply"),
    ("--download-only", "--check"),
    ("--download-only", "--apply"),
    ("--from-downloaded", "--check"),
    ("--from-downloaded", "--download-only"),
)
SOFT_REBOOT_MODES = ("required", "auto")


def parse_options(args: list[str], flags: set[str], values: set[str], usage: str) -> tuple[set[str], dict[str, str], list[str]]:
    """clap's reading of ``args``: flags, ``--name=value`` or ``--name value`` options, positionals; anything else
    starting with '-' is refused (exit code 2)."""
    seen: set[str] = set()
    given: dict[str, str] = {}
    positional: list[str] = []
    rest = iter(args)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if arg == "--":
            positional.extend(rest)
            break
        if name in values:
            if not eq:
                value = next(rest, None)
                if value is None:
                    raise ClapUsage(
                        f"a value is required for '{name} <{name[2:].upper().replace('-', '_')}>' but none was supplied"
                    )
            given[name] = value
        elif arg in flags:
            seen.add(arg)
        elif arg.startswith("-") and arg != "-":
            raise ClapUsage(f"unexpected argument '{arg}' found\n\nUsage: {usage}")
        else:
            positional.append(arg)
    return seen, given, positional


def soft_reboot_mode(given: dict[str, str]) -> str | None:
    mode = given.get("--soft-reboot")
    if mode is not None and mode not in SOFT_REBOOT_MODES:
        raise ClapUsage(f"invalid value '{mode}' for '--soft-reboot <SOFT_REBOOT>'\n  [possible values: required, auto]")
    return mode


def soft_reboot(mode: str | None, kind: str) -> None:
    """bootc's handle_soft_reboot: no lab deployment is soft-reboot capable (softRebootCapable is false), so
    ``required`` fails and ``auto`` falls back to the normal reboot."""
    if mode == "required":
        raise SimError(f"Soft reboot was required but {kind} deployment is not soft-reboot capable")


def cmd_upgrade(args: list[str]) -> int:
    flags, given, positional = parse_options(args, UPGRADE_FLAGS, UPGRADE_VALUES, "bootc upgrade [OPTIONS]")
    if positional:
        raise ClapUsage(f"unexpected argument '{positional[0]}' found\n\nUsage: bootc upgrade [OPTIONS]")
    order = [a.split("=", 1)[0] for a in args]
    for one, other in UPGRADE_CONFLICTS:
        if one in flags and other in flags:
            first, second = sorted((one, other), key=order.index)
            raise ClapUsage(f"the argument '{first}' cannot be used with '{second}'")
    mode = soft_reboot_mode(given)
    apply = "--apply" in flags
    deps, merge = _merge()
    staged = next((d for d in deps if d.staged), None)
    if "--from-downloaded" in flags:
        if staged is None:
            raise SimError("No staged deployment found")
        if staged.finalization_locked:
            en.record_staged(staged, False)
            print("Staged deployment will now be applied on reboot")
        else:
            print("Staged deployment is already set to apply on reboot")
        soft_reboot(mode, "staged")
        if apply:
            _apply()
        return 0
    _check_compatible(merge)
    ref = en.origin_ref(merge)
    if not sc.is_container_ref(ref):
        raise SimError("No image source specified")
    if "--tag" in given:
        ref = retag(ref, given["--tag"])
    entry = latest(ref, en.commit_arch(merge.checksum))
    booted = sc.booted_deployment(deps)
    booted_digest = sc.commit_info(booted.checksum).metadata.get("ostree.manifest-digest") if booted else None
    staged_digest = sc.commit_info(staged.checksum).metadata.get("ostree.manifest-digest") if staged else None
    if "--check" in flags:
        return _check(ref, entry, staged_digest or booted_digest)
    if staged is not None and entry["digest"] == staged_digest:
        changed = False
        if "--download-only" in flags and not staged.finalization_locked:
            en.record_staged(staged, True)
            print("Image downloaded, but will not be applied on reboot")
            changed = True
        elif "--download-only" not in flags and staged.finalization_locked:
            en.record_staged(staged, False)
            print("Staged deployment will now be applied on reboot")
            changed = True
        if not changed:
            print("Staged update present, not changed")
        soft_reboot(mode, "staged")
        if apply:
            _apply()
        return 0
    if entry["digest"] == booted_digest:
        print("No update available.")
        return 0
    with sc.transaction("upgrade", merge.osname):
        _stage(merge, ref, lock="--download-only" in flags)
    if "--download-only" in flags:
        print("Image downloaded, but will not be applied on reboot")
    soft_reboot(mode, "staged")
    if apply:
        _apply()
    return 0


def latest(ref: str, arch: str) -> dict[str, Any]:
    """What the image reference points at now, as ``--check`` learns it (the manifest and config, no layers):
    :func:`engine.resolve_image`, with ``digest`` the manifest digest an import would record (its commit's
    ``ostree.manifest-digest``, read from the commit's metadata alone), so that it compares with the deployments'."""
    entry = en.resolve_image(ref, arch)
    sc.ostree("pull", sc.repo_arg(), "--commit-metadata-only", "fedora", entry["ref"])
    commit = sc.resolve_rev(f"fedora:{entry['ref']}")
    sc.ostree("refs", sc.repo_arg(), "--delete", f"fedora:{entry['ref']}", check=False)
    if commit is None:
        raise SimError(f"Importing: no layers for {entry['manifest']} on the image server")
    digest = sc.commit_info(commit).metadata.get("ostree.manifest-digest") or entry["digest"]
    return {**entry, "digest": digest}


def retag(ref: str, tag: str) -> str:
    """``bootc upgrade --tag=TAG``: the booted image's repository at another tag (a digest reference has none)."""
    image = sc.parse_image_ref(ref)
    repository = image.name.split("@", 1)[0]
    if "@" in image.name:
        raise SimError(f"Cannot use --tag with a digested image reference: {image.name}")
    last = repository.rsplit("/", 1)[-1]
    if ":" in last:
        repository = repository[: len(repository) - len(last)] + last.split(":", 1)[0]
    return ref[: len(ref) - len(image.name)] + f"{repository}:{tag}"


def _check(ref: str, entry: dict[str, Any], current: str | None) -> int:
    """``--check``: the manifest and config only; the update it finds is the booted entry's ``cachedUpdate``."""
    name = sc.parse_image_ref(ref).name
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
            "image": image_reference(ref),
            "version": entry["version"],
            "timestamp": entry["created"],
            "imageDigest": entry["digest"],
            "architecture": entry["architecture"],
        },
    )
    return 0


SWITCH_FLAGS = {
    "--enforce-container-sigpolicy",
    "--apply",
    "--retain",
    "--quiet",
    "--mutate-in-place",
    "--no-signature-verification",
}
SWITCH_VALUES = {"--transport", "--soft-reboot"}


def cmd_switch(args: list[str]) -> int:
    # clap: `--transport VALUE` or `--transport=VALUE`; `-h`/`--help` print help and exit 0; `--` ends the options;
    # any other argument starting with '-' is refused with exit code 2.
    if "-h" in args or "--help" in args:
        print("Target a new container image reference to boot\n\nUsage: bootc switch [OPTIONS] <TARGET>")
        return 0
    flags, given, pos = parse_options(args, SWITCH_FLAGS, SWITCH_VALUES, "bootc switch [OPTIONS] <TARGET>")
    if len(pos) != 1:
        raise ClapUsage("the following required arguments were not provided: <TARGET>")
    mode = soft_reboot_mode(given)
    transport = given.get("--transport", "registry")
    target = pos[0]
    prefix = "ostree-image-signed" if "--enforce-container-sigpolicy" in flags else "ostree-unverified-image"
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
    soft_reboot(mode, "staged")
    if "--apply" in flags:
        _apply()
    return 0


def cmd_rollback(args: list[str]) -> int:
    flags, given, positional = parse_options(args, {"--apply"}, {"--soft-reboot"}, "bootc rollback [OPTIONS]")
    if positional:
        raise ClapUsage(f"unexpected argument '{positional[0]}' found\n\nUsage: bootc rollback [OPTIONS]")
    mode = soft_reboot_mode(given)
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
    soft_reboot(mode, "rollback")
    if "--apply" in flags:
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
