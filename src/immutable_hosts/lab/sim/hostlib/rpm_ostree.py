"""Lab simulator of ``rpm-ostree`` (contract: ../shared/reference/rpm-ostree-contract.md §7).

Installed as /usr/bin/rpm-ostree in lab hosts. Stdlib only plus the real ``ostree`` CLI.
Env ``IMMUTABLE_HOSTS_SIM_ROOT`` selects a root prefix (default ``/``) for tests on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import engine as en
import simcore as sc
from simcore import Deployment, SimError

# typing only for type checkers, as in simcore.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable

UNCHANGED = 77
QUEUED = 'Changes queued for next boot. Run "systemctl reboot" to start a reboot'
RUN_REBOOT = 'Run "systemctl reboot" to start a reboot'
COMMON_BOOL = {"-r", "--reboot", "--lock-finalization", "-C", "--cache-only", "-q", "--quiet", "--peer"}
COMMON_VAL = {"--stateroot", "--os", "--sysroot", "--install", "--uninstall"}


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Opts(sc.Record):
    FIELDS = ("flags", "values", "args")

    def __init__(self, args: list[str] | None = None) -> None:
        self.flags: set[str] = set()
        self.values: dict[str, list[str]] = {}
        self.args: list[str] = list(args or [])

    def has(self, *names: str) -> bool:
        return any(n in self.flags for n in names)

    def get(self, name: str) -> str | None:
        vals = self.values.get(name)
        return vals[-1] if vals else None

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])


ALIASES = {
    "-r": "--reboot",
    "-n": "--dry-run",
    "-y": "--assumeyes",
    "-A": "--apply-live",
    "-b": "--booted",
    "-v": "--verbose",
    "-a": "--all",
    "-p": "--pending",
    "-J": "--jsonpath",
    "-C": "--cache-only",
    "-m": "--repomd",
    "-l": "--overlays",
    "-o": "--overrides",
    "-i": "--initramfs",
    "-q": "--quiet",
    "--upgrade-unchanged-exit-77": "--unchanged-exit-77",
    "--check-diff": "--preview",
    "--os": "--stateroot",
}


def parse(argv: list[str], bools: set[str], vals: set[str]) -> Opts:
    opts = Opts()
    bools, vals = bools | COMMON_BOOL, vals | COMMON_VAL
    it = iter(argv)
    for a in it:
        if a == "--":
            opts.args.extend(it)
            break
        name, eq, val = a.partition("=")
        if a.startswith("-") and a != "-" and name in vals:
            value = val if eq else next(it, None)
            if value is None:
                raise SimError(f"Missing argument for {name}")
            opts.values.setdefault(ALIASES.get(name, name), []).append(value)
        elif a.startswith("-") and a != "-" and a in bools:
            opts.flags.add(ALIASES.get(a, a))
        elif a.startswith("-") and a != "-" and len(a) > 1:
            raise SimError(f"Unknown option {a}")
        else:
            opts.args.append(a)
    return opts


def out(msg: str = "") -> None:
    print(msg, flush=True)


def err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- helpers
def ostree_booted_check(opts: Opts | None = None) -> None:
    if sc.root() == Path("/") and not Path("/run/ostree-booted").exists():
        raise SimError(
            "This system was not booted via libostree.\n"
            "Currently, most rpm-ostree commands only work on ostree-based host systems."
        )


def osname_deps(opts: Opts) -> tuple[str, list[Deployment]]:
    deps = sc.list_deployments()
    booted = sc.booted_deployment(deps)
    osname = opts.get("--stateroot") or (booted.osname if booted else deps[0].osname if deps else "fedora")
    return osname, [d for d in deps if d.osname == osname]


def merge_dep(opts: Opts) -> tuple[str, Deployment]:
    osname, deps = osname_deps(opts)
    if not deps:
        raise SimError(f"No deployments found for os {osname}")
    return osname, deps[0]


def copy_origin(dep: Deployment) -> dict[str, dict[str, str]]:
    groups = {k: dict(v) for k, v in dep.origin.items()}
    groups.get("origin", {}).pop("override-commit", None)
    return groups


def check_layering_allowed() -> None:
    if sc.read_daemon_config().get("LockLayering") == "true":
        raise SimError("Cannot operate; `LockLayering=true` in configuration.")


def check_driver(opts: Opts) -> None:
    if opts.has("--bypass-driver"):
        return
    drv = active_driver()
    if drv is None or drv["driver-sd-unit"] == sc.current_unit():
        return
    raise SimError(
        f"Updates and deployments are driven by {drv['driver-name']} ({drv['driver-sd-unit']})\n"
        f"See {drv['driver-name']}'s documentation\n"
        f"Use --bypass-driver to bypass {drv['driver-name']} and perform the operation anyways"
    )


def active_driver() -> dict[str, Any] | None:
    drv = sc.read_state("update-driver")
    if not drv:
        return None
    if Path("/run/systemd/system").exists() and sc.root() == Path("/") and drv.get("driver-sd-unit"):
        import subprocess

        state = subprocess.run(
            ["systemctl", "is-active", drv["driver-sd-unit"]], capture_output=True, text=True, check=False
        ).stdout.strip()
        if state in ("active", "activating", "reloading", "failed"):
            return drv
    return drv if sc.pid_alive(int(drv.get("pid", 0))) else None


def finish(opts: Opts, new: Deployment | None, before_id: str, tail: str) -> int:
    """Common tail: 77 when the default deployment did not change; reboot when asked."""
    deps = sc.list_deployments()
    if new is None or (deps and deps[0].id == before_id):
        out("No change.")
        return UNCHANGED if opts.has("--unchanged-exit-77") else 0
    if opts.has("--reboot"):
        do_reboot()
        return 0
    out(tail)
    return 0


def do_reboot() -> None:
    if sc.root() == Path("/"):
        os.execvp("systemctl", ["systemctl", "reboot"])  # noqa: S606 - argv list, fixed binary
    simulate_reboot()


def simulate_reboot() -> None:
    en.finalize_at_shutdown()
    en.reset_run_state()
    en.mark_booted()


def title_of(argv: list[str]) -> str:
    return " ".join(argv)


def print_diff(merge_csum: str, new_csum: str) -> None:
    """The package diff rpm-ostree prints after a deployment: the booted deployment against the new one (the previous
    pending deployment may be gone by now, replaced by the new one)."""
    booted = sc.booted_deployment(sc.list_deployments())
    old_csum = booted.checksum if booted is not None else merge_csum
    old = en.base_pkgs(en.base_checksum(old_csum))
    new = en.base_pkgs(en.base_checksum(new_csum))
    for name, nevra in _layered_pkgs(new_csum).items():
        new.setdefault(name, nevra)
    for name, nevra in _layered_pkgs(old_csum).items():
        old.setdefault(name, nevra)
    upgraded = [n for n in sorted(new) if n in old and old[n] != new[n]]
    removed = [n for n in sorted(old) if n not in new]
    added = [n for n in sorted(new) if n not in old]
    for title, names in (("Upgraded:", upgraded), ("Removed:", removed), ("Added:", added)):
        if names:
            out(title)
            for n in names:
                out(f"  {new.get(n) or old.get(n)}")


def _layered_pkgs(csum: str) -> dict[str, str]:
    meta = sc.commit_info(csum).metadata
    if not meta.get("rpmostree.clientlayer"):
        return {}
    repo = en.repo_pkgs(en.base_checksum(csum))
    pkgs = {p: repo.get(p, p) for p in meta.get("rpmostree.packages", [])}
    for nevra in meta.get("rpmostree.removed-base-packages", []):
        pkgs[sc.split_nevra(nevra)[0]] = ""
    return {k: v for k, v in pkgs.items() if v}


# ---------------------------------------------------------------- status
def status_doc(booted_only: bool) -> dict[str, Any]:
    deps = sc.list_deployments()
    docs = [en.deployment_doc(d) for d in deps if d.booted or not booted_only]
    txn = sc.active_transaction()
    drv = sc.read_state("update-driver")
    return {
        "deployments": docs,
        "transaction": [txn["method"], txn["sender"], txn["objpath"]] if txn else None,
        "cached-update": sc.read_state("cached-update"),
        "update-driver": {"driver-name": drv["driver-name"], "driver-sd-unit": drv["driver-sd-unit"]} if drv else None,
    }


def jsonpath(doc: Any, expr: str) -> list[Any]:
    """Small JSONPath subset: $.a.b, $.a[0], $['a-b'], $.a[*].b, $..key is not supported."""
    import re

    tokens = re.findall(r"\.([A-Za-z0-9_\-]+)|\[(\d+|\*)\]|\['([^']+)'\]|\[\"([^\"]+)\"\]", expr.removeprefix("$"))
    nodes = [doc]
    for name, idx, q1, q2 in tokens:
        key = name or q1 or q2
        nxt: list[Any] = []
        for n in nodes:
            if key and isinstance(n, dict) and key in n:
                nxt.append(n[key])
            elif idx == "*" and isinstance(n, list | dict):
                nxt.extend(n if isinstance(n, list) else n.values())
            elif idx and idx != "*" and isinstance(n, list) and int(idx) < len(n):
                nxt.append(n[int(idx)])
        nodes = nxt
    return nodes


def cmd_status(argv: list[str]) -> int:
    opts = parse(
        argv,
        {"--json", "-b", "--booted", "-v", "--verbose", "-a", "--advisories", "--pending-exit-77", "-p", "--pretty"},
        {"-J", "--jsonpath"},
    )
    if opts.has("--json") and opts.get("--jsonpath"):
        raise SimError("Cannot specify both --json and --jsonpath")
    doc = status_doc(opts.has("--booted"))
    if opts.has("--json"):
        out(json.dumps(doc, indent=2))
    elif opts.get("--jsonpath"):
        out(json.dumps(jsonpath(doc, opts.get("--jsonpath") or "$"), indent=2))
    else:
        print_status_text(doc, opts)
    if opts.has("--pending-exit-77"):
        deps = doc["deployments"] if not opts.has("--booted") else status_doc(False)["deployments"]
        if len(deps) > 1 and not deps[0]["booted"]:
            return UNCHANGED
    return 0


def _kv(key: str, value: str) -> None:
    out(f"{key:>25}: {value}")


def print_status_text(doc: dict[str, Any], opts: Opts) -> None:
    txn = sc.active_transaction()
    out(f"State: {'busy' if txn else 'idle'}")
    drv = doc["update-driver"]
    policy = sc.read_daemon_config().get("AutomaticUpdatePolicy", "none")
    if drv:
        out(f"AutomaticUpdatesDriver: {drv['driver-name']}")
    elif policy != "none" or opts.has("--verbose"):
        out(f"AutomaticUpdates: {'disabled' if policy == 'none' else policy}")
    if txn:
        out(f"Transaction: {txn['title']}")
        out(f"  Initiator: client(id:{txn.get('initiator') or 'cli'} dbus:{txn['sender']} uid:0)")
    out("BootedDeployment:" if opts.has("--booted") else "Deployments:")
    for d in doc["deployments"]:
        ref = d.get("container-image-reference") or d.get("origin") or d["checksum"]
        out(f"{'●' if d['booted'] else ' '} {ref}")
        if "container-image-reference-digest" in d:
            _kv("Digest", d["container-image-reference-digest"])
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d["timestamp"]))
        _kv("Version", f"{d.get('version', '')} ({stamp})")
        if "base-checksum" in d:
            _kv("BaseCommit", d["base-checksum"])
        elif "origin" in d:
            _kv("Commit", d["checksum"])
        if d["requested-base-removals"]:
            _kv("RemovedBasePackages", " ".join(d["requested-base-removals"]))
        if d["requested-base-local-replacements"]:
            _kv("LocalOverrides", " ".join(d["requested-base-local-replacements"]))
        if d["packages"]:
            _kv("LayeredPackages", " ".join(d["packages"]))
        inactive = [p for p in d["requested-packages"] if p not in d["packages"]]
        if inactive:
            _kv("InactiveRequests", " ".join(inactive))
        if d["requested-local-packages"]:
            _kv("LocalPackages", " ".join(d["requested-local-packages"]))
        if d["regenerate-initramfs"]:
            _kv("Initramfs", "regenerate")
        if d["pinned"]:
            _kv("Pinned", "yes")
        if d["unlocked"] != "none":
            _kv("Unlocked", d["unlocked"])
        if d.get("finalization-locked"):
            _kv("Staged", "yes (finalization locked)")
        out()


# ---------------------------------------------------------------- install / uninstall
PKG_BOOL = {
    "-n",
    "--dry-run",
    "-y",
    "--assumeyes",
    "--allow-inactive",
    "--idempotent",
    "--unchanged-exit-77",
    "--download-only",
    "-A",
    "--apply-live",
    "--force-replacefiles",
    "--all",
}
PKG_VAL = {"--enablerepo", "--disablerepo", "--releasever"}


def _local_entry(arg: str) -> tuple[str, str] | None:
    if not (arg.endswith(".rpm") or arg.startswith("file://")):
        return None
    info = sc.read_local_rpm(Path(arg.removeprefix("file://")))
    return info["name"], f"{info['sha256']}:{info['nevra']}"


def apply_install(groups: dict[str, dict[str, str]], base: str, pkgs: list[str], opts: Opts, container: bool) -> list[str]:
    """Mutate the origin groups for installs; return the inactive notices."""
    pk = groups.setdefault("packages", {})
    requested, local = sc.kf_list(pk.get("requested")), sc.kf_list(pk.get("requested-local"))
    provided, repo = en.base_pkgs(base), en.repo_pkgs(base)
    removed = sc.kf_list(groups.get("overrides", {}).get("remove"))
    inactive, missing = [], []
    for p in pkgs:
        loc = _local_entry(p)
        if loc is not None:
            if any(x.endswith(":" + loc[1].split(":", 1)[1]) for x in local):
                if not opts.has("--idempotent"):
                    raise SimError(f"Package '{loc[1].split(':', 1)[1]}' is already layered")
                continue
            local.append(loc[1])
            continue
        if p in requested:
            if not opts.has("--idempotent"):
                raise SimError(f"Package/capability '{p}' is already requested")
            continue
        if p in removed and p in provided:
            raise SimError(f"Cannot request '{p}' provided by removed package '{provided[p]}'")
        if p in provided and not container:
            if not opts.has("--allow-inactive"):
                raise SimError(f'"{p}" is already provided by: {provided[p]}. Use --allow-inactive to explicitly require it.')
            inactive.append(f"  {p} (already provided by {provided[p]})")
        elif p in provided and container and not opts.has("--idempotent", "--allow-inactive"):
            raise SimError("No packages in transaction")
        elif p in provided and container:
            continue
        elif p not in repo:
            missing.append(p)
            continue
        requested.append(p)
    if missing:
        raise SimError("Packages not found: " + ", ".join(missing))
    en.check_signatures(base, [p for p in requested if p not in sc.kf_list(pk.get("requested"))])
    pk["requested"], pk["requested-local"] = sc.kf_join(sorted(set(requested))), sc.kf_join(local)
    return inactive


def apply_uninstall(groups: dict[str, dict[str, str]], pkgs: list[str], opts: Opts) -> None:
    pk = groups.setdefault("packages", {})
    requested, local = sc.kf_list(pk.get("requested")), sc.kf_list(pk.get("requested-local"))
    if opts.has("--all"):
        requested, local = [], []
    for p in pkgs:
        match_local = [x for x in local if x.split(":", 1)[-1] == p or sc.split_nevra(x.split(":", 1)[-1])[0] == p]
        if p in requested:
            requested.remove(p)
        elif match_local:
            local = [x for x in local if x not in match_local]
        elif not opts.has("--idempotent"):
            raise SimError(f"Package/capability '{p}' is not currently requested")
    pk["requested"], pk["requested-local"] = sc.kf_join(requested), sc.kf_join(local)


def cmd_pkg(argv: list[str], verb: str) -> int:
    opts = parse(argv[1:], PKG_BOOL, PKG_VAL)
    if opts.get("--enablerepo") or opts.get("--disablerepo"):
        raise SimError("--enablerepo currently only works in a container build")
    if opts.has("--apply-live") and opts.has("--reboot"):
        raise SimError("Cannot specify `apply-live` and `reboot`")
    pkgs = opts.args
    installs = pkgs if verb == "install" else opts.all("--install")
    removes = pkgs if verb == "uninstall" else opts.all("--uninstall")
    if not pkgs and not (verb == "uninstall" and opts.has("--all")):
        raise SimError("At least one PACKAGE must be specified")
    check_layering_allowed()
    osname, merge = merge_dep(opts)
    with sc.transaction(title_of(argv), osname):
        groups = copy_origin(merge)
        base = en.base_checksum(merge.checksum)
        container = sc.is_container_ref(en.origin_ref(merge))
        if removes or opts.has("--all"):
            apply_uninstall(groups, removes, opts)
        inactive = apply_install(groups, base, installs, opts, container) if installs else []
        if en.normalise_origin(groups) == en.normalise_origin(copy_origin(merge)):
            out("No change.")
            return UNCHANGED if opts.has("--unchanged-exit-77") else 0
        if inactive:
            out("Inactive requests:")
            for line in inactive:
                out(line)
        if opts.has("--dry-run"):
            out("Exiting because of '--dry-run' option")
            return 0
        if opts.has("--apply-live") and not opts.has("--assumeyes"):
            err("notice: auto-inferring -y/--assumeyes when not run interactively; this will change in the future")
        new = en.deploy(osname, groups, base, lock=opts.has("--lock-finalization"))
        print_diff(merge.checksum, new.checksum)
    if opts.has("--apply-live"):
        out("Successfully updated running filesystem tree.")
        return 0
    return finish(opts, new, merge.id, QUEUED)


# ---------------------------------------------------------------- upgrade / rebase / deploy
def fetch_latest(dep: Deployment) -> tuple[str, str | None]:
    """Pull what the origin points at now; return (base checksum, image digest or None)."""
    ref = en.origin_ref(dep)
    if sc.is_container_ref(ref):
        entry = en.pull_image(ref, en.commit_arch(dep.checksum))
        return entry["commit"], entry["digest"]
    if len(ref) == 64:
        return ref, None
    return en.pull_ref(ref), None


def cmd_upgrade(argv: list[str]) -> int:
    opts = parse(
        argv[1:],
        {
            "--allow-downgrade",
            "--preview",
            "--check",
            "--check-diff",
            "--download-only",
            "--unchanged-exit-77",
            "--upgrade-unchanged-exit-77",
            "--bypass-driver",
            "--trigger-automatic-update-policy",
        },
        set(),
    )
    for a, b in (("--reboot", "--preview"), ("--reboot", "--check")):
        if opts.has(a) and opts.has(b):
            raise SimError(f"Cannot specify both {a} and {b}")
    if opts.has("--preview") and (opts.all("--install") or opts.all("--uninstall")):
        raise SimError("Cannot specify both --preview and --install/--uninstall")
    if opts.args:
        raise SimError("Too many arguments")
    policy = sc.read_daemon_config().get("AutomaticUpdatePolicy", "none")
    if opts.has("--trigger-automatic-update-policy"):
        return automatic_update(opts, policy)
    if policy == "stage":
        out("note: automatic updates (stage) are enabled")
    if opts.has("--check", "--preview"):
        return upgrade_check(opts)
    check_driver(opts)
    return do_upgrade(opts, title_of(argv))


def automatic_update(opts: Opts, policy: str) -> int:
    if policy == "none":
        out("Automatic updates are not enabled; exiting...")
        return 0
    if policy == "check":
        upgrade_check(opts, quiet=True)
        return 0
    return do_upgrade(opts, f"automatic ({policy})", lock=False)


def upgrade_check(opts: Opts, quiet: bool = False) -> int:
    if not quiet:
        err("Note: --check and --preview may be unreliable.  See https://github.com/coreos/rpm-ostree/issues/1579")
    osname, merge = merge_dep(opts)
    with sc.transaction("upgrade --check", osname):
        new_base, digest = fetch_latest(merge)
    old_base = en.base_checksum(merge.checksum)
    if new_base == old_base:
        sc.write_state("cached-update", None)
        if not quiet:
            out("No updates available.")
        return UNCHANGED
    info = sc.commit_info(new_base)
    cached = {
        "osname": osname,
        "checksum": new_base,
        "version": info.metadata.get("version", ""),
        "timestamp": info.timestamp,
        "origin": en.origin_ref(merge),
        "ref-has-new-commit": True,
        "update-sha256": merge.checksum,
    }
    if digest is None:
        cached["gpg-enabled"] = False
    sc.write_state("cached-update", cached)
    if not quiet:
        out("AvailableUpdate:")
        _kv("Version", f"{cached['version']} ({time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(info.timestamp))})")
        _kv("Commit", new_base)
        if digest:
            _kv("Digest", digest)
    return 0


def do_upgrade(opts: Opts, title: str, lock: bool | None = None) -> int:
    osname, merge = merge_dep(opts)
    if len(en.origin_ref(merge)) == 64:
        raise SimError("Pinned to commit; no upgrade available")
    with sc.transaction(title, osname):
        new_base, _digest = fetch_latest(merge)
        old_base = en.base_checksum(merge.checksum)
        groups = copy_origin(merge)
        if opts.all("--install"):
            apply_install(groups, new_base, opts.all("--install"), opts, False)
        if opts.all("--uninstall"):
            apply_uninstall(groups, opts.all("--uninstall"), opts)
        if (
            new_base == old_base
            and en.normalise_origin(groups) == en.normalise_origin(copy_origin(merge))
            and "override-commit" not in merge.origin.get("origin", {})
        ):
            out("No upgrade available.")
            return UNCHANGED if opts.has("--unchanged-exit-77") else 0
        if opts.has("--download-only"):
            out("Update downloaded.")
            return 0
        locked = opts.has("--lock-finalization") if lock is None else lock
        new = en.deploy(osname, groups, new_base, lock=locked)
        print_diff(merge.checksum, new.checksum)
        record_cached_update(osname, merge, new, new_base)
    return finish(opts, new, merge.id, RUN_REBOOT)


def record_cached_update(osname: str, merge: Deployment, new: Deployment, new_base: str) -> None:
    """Like rpmostreed: after staging an update, cached-update describes the booted -> staged diff."""
    booted = sc.booted_deployment(sc.list_deployments())
    info = sc.commit_info(new_base)
    cached: dict[str, Any] = {
        "osname": osname,
        "checksum": new_base,
        "version": info.metadata.get("version", ""),
        "timestamp": info.timestamp,
        "origin": en.origin_ref(merge),
        "ref-has-new-commit": True,
        "deployment": new.id,
        "update-sha256": booted.checksum if booted else merge.checksum,
    }
    if not sc.is_container_ref(cached["origin"]):
        cached["gpg-enabled"] = False
    sc.write_state("cached-update", cached)


def complete_refspec(target: str, merge: Deployment, opts: Opts) -> str:
    if sc.is_container_ref(target) or len(target) == 64:
        return target
    cur = en.origin_ref(merge)
    cur_remote, _, cur_branch = cur.rpartition(":") if not sc.is_container_ref(cur) else ("fedora", "", "")
    remote = opts.get("--remote")
    branch = opts.get("--branch")
    if target.endswith(":") and not branch:
        remote, branch = target[:-1], cur_branch
        out(f"Rebasing to {remote}:{branch}")
    elif target.startswith(":"):
        return target[1:]
    elif ":" in target:
        return target
    elif target:
        branch = target
    return f"{remote or cur_remote}:{branch or cur_branch}" if (remote or cur_remote) else (branch or cur_branch)


def cmd_rebase(argv: list[str]) -> int:
    opts = parse(
        argv[1:],
        {"--skip-purge", "--download-only", "--experimental", "--disallow-downgrade", "--bypass-driver"},
        {"-b", "--branch", "-m", "--remote", "--custom-origin-url", "--custom-origin-description"},
    )
    opts.values = {{"-b": "--branch", "-m": "--remote"}.get(k, k): v for k, v in opts.values.items()}
    if bool(opts.get("--custom-origin-url")) != bool(opts.get("--custom-origin-description")):
        raise SimError("--custom-origin-description must be supplied with --custom-origin-url")
    if len(opts.args) > 2:
        raise SimError("Too many arguments")
    if not opts.args and not (opts.get("--branch") or opts.get("--remote")):
        raise SimError("Must specify refspec, or -b branch or -m remote")
    if opts.args and opts.args[0] == "":
        raise SimError("Refspec is empty")
    check_driver(opts)
    osname, merge = merge_dep(opts)
    target = complete_refspec(opts.args[0] if opts.args else "", merge, opts)
    old = en.origin_ref(merge)
    if target == old:
        raise SimError(f"Old and new refs are equal: {target}")
    with sc.transaction(title_of(argv), osname):
        if sc.is_container_ref(target):
            new_base = en.pull_image(target, en.commit_arch(merge.checksum))["commit"]
        elif len(target) == 64:
            new_base = target
        else:
            new_base = en.pull_ref(target)
        groups = copy_origin(merge)
        o = groups.setdefault("origin", {})
        for k in ("refspec", "baserefspec", "container-image-reference", "custom-url", "custom-description"):
            o.pop(k, None)
        o["container-image-reference" if sc.is_container_ref(target) else "refspec"] = target
        if opts.get("--custom-origin-url"):
            o["custom-url"] = opts.get("--custom-origin-url") or ""
            o["custom-description"] = opts.get("--custom-origin-description") or ""
        # rebase takes --install/--uninstall (SUPPORTS_PKG_INSTALLS): the requests are checked against the new base,
        # in the same transaction, so a refused one leaves no deployment behind.
        if opts.all("--install"):
            apply_install(groups, new_base, opts.all("--install"), opts, sc.is_container_ref(target))
        if opts.all("--uninstall"):
            apply_uninstall(groups, opts.all("--uninstall"), opts)
        if opts.has("--download-only"):
            out("Update downloaded.")
            return 0
        new = en.deploy(osname, groups, new_base, lock=opts.has("--lock-finalization"))
        if not opts.has("--skip-purge") and old and not sc.is_container_ref(old) and len(old) != 64:
            sc.ostree("refs", sc.repo_arg(), "--delete", old, check=False)
        print_diff(merge.checksum, new.checksum)
    return finish(opts, new, merge.id, QUEUED)


def resolve_revision(merge: Deployment, revision: str) -> str:
    if revision.startswith("revision=") or (len(revision) == 64 and all(c in "0123456789abcdef" for c in revision)):
        csum = revision.removeprefix("revision=")
        out(f"Validating checksum '{csum}'")
        return csum
    version = revision.removeprefix("version=")
    ref = en.origin_ref(merge)
    if len(ref) == 64:
        raise SimError("Cannot look up version while pinned to commit")
    out(f"Resolving version '{version}'")
    remote, _, branch = ref.rpartition(":")
    sc.ostree("pull", sc.repo_arg(), "--commit-metadata-only", "--depth=-1", remote, branch)
    csum = sc.resolve_rev(ref)
    while csum:
        info = sc.commit_info(csum)
        if info.metadata.get("version") == version:
            return csum
        csum = info.parent
    raise SimError(f"Unable to find version {version}")


def cmd_deploy(argv: list[str]) -> int:
    opts = parse(
        argv[1:],
        {"--preview", "--download-only", "--skip-branch-check", "--disallow-downgrade", "--unchanged-exit-77", "--bypass-driver"},
        {"--register-driver", "--ex-cliwrap"},
    )
    if not opts.args:
        raise SimError("REVISION must be specified")
    if opts.args[0] == "" and opts.get("--register-driver"):
        out("Empty string revision found; registering update driver only")
        register_driver(opts.get("--register-driver") or "", os.getppid())
        return 0
    check_driver(opts)
    osname, merge = merge_dep(opts)
    with sc.transaction(title_of(argv), osname):
        csum = resolve_revision(merge, opts.args[0])
        ref = en.origin_ref(merge)
        if not sc.is_container_ref(ref) and len(ref) != 64:
            remote, _, _branch = ref.rpartition(":")
            sc.ostree("pull", sc.repo_arg(), remote or "fedora", csum, check=False)
        if sc.resolve_rev(csum) is None:
            raise SimError(f"Checksum {csum} not found in {ref}")
        if csum == en.base_checksum(merge.checksum):
            out("No change.")
            return UNCHANGED if opts.has("--unchanged-exit-77") else 0
        if opts.get("--register-driver"):
            register_driver(opts.get("--register-driver") or "", os.getppid())
        new = en.deploy(osname, copy_origin(merge), csum, lock=opts.has("--lock-finalization"), override_commit=csum)
        print_diff(merge.checksum, new.checksum)
    return finish(opts, new, merge.id, RUN_REBOOT)


def register_driver(name: str, pid: int) -> None:
    sc.write_state("update-driver", {"driver-name": name, "driver-sd-unit": sc.current_unit() or f"{name}.service", "pid": pid})


# ---------------------------------------------------------------- rollback / cleanup / cancel / reload
def cmd_rollback(argv: list[str]) -> int:
    opts = parse(argv[1:], set(), set())
    osname, deps = osname_deps(opts)
    all_deps = sc.list_deployments()
    booted = sc.booted_deployment(all_deps)
    if any(d.staged for d in deps):
        raise SimError("Staged deployment (remove with cleanup -p)")
    if booted is None:
        raise SimError("No rollback deployment found")
    after = [d for d in deps if d.index > booted.index]
    if deps[0].name == booted.name and not after:
        raise SimError("No rollback deployment found")
    with sc.transaction(title_of(argv), osname):
        target = after[0] if deps[0].name == booted.name else booted
        out(f"Moving '{target.name}' to be first deployment")
        set_default(target)
        print_diff(deps[0].checksum, target.checksum)
    return finish(opts, target, deps[0].id, QUEUED)


def set_default(target: Deployment) -> None:
    """Move ``target`` to index 0 and rewrite the bootloader config (real, via ostree)."""
    proc = sc.admin("set-default", str(target.index), check=False)
    if proc.returncode == 0:
        return
    # ostree < 2025 has no set-default: redeploy the same commit + origin as new default, drop the old copy.
    kargs = sc.kargs_of(target)
    with open(target.origin_path) as fh:
        origin = fh.read()
    tmp = sc.run_dir() / "rollback.origin"
    tmp.write_text(origin)
    sc.admin(
        "deploy",
        f"--os={target.osname}",
        "--retain",
        f"--origin-file={tmp}",
        "--karg-none",
        *[f"--karg-append={k}" for k in kargs if not k.startswith("ostree=")],
        target.checksum,
    )
    tmp.unlink()
    for d in sc.list_deployments():
        if d.name == target.name and d.index != 0:
            sc.admin("undeploy", str(d.index))
            break


def cmd_cleanup(argv: list[str]) -> int:
    opts = parse(argv[1:], {"-p", "--pending", "-r", "--rollback", "-b", "--base", "-m", "--repomd"}, set())
    opts.flags = {"--rollback" if f == "--reboot" else f for f in opts.flags}
    if not opts.has("--pending", "--rollback", "-b", "--base", "--booted", "--repomd"):
        raise SimError("cleanup: At least one cleanup option must be specified")
    osname, deps = osname_deps(opts)
    booted = sc.booted_deployment(sc.list_deployments())
    with sc.transaction(title_of(argv), osname):
        drop = set()
        bidx = booted.index if booted else -1
        for d in deps:
            if d.pinned or (booted and d.name == booted.name):
                continue
            if opts.has("--pending") and (d.index < bidx or (booted is None and d.index == 0 and d.staged)):
                drop.add(d.name)
            if opts.has("--rollback") and booted and d.index > bidx:
                drop.add(d.name)
        if any(d.staged and d.name in drop for d in deps):
            en.clear_staged()
        en.undeploy_names(drop)
        if opts.has("-b", "--base", "--booted"):  # -b is --base here (the global alias table maps it to --booted)
            sc.admin("cleanup")
        if not drop:
            out("Deployments unchanged.")
    return 0


def cmd_cancel(argv: list[str]) -> int:
    parse(argv[1:], set(), set())
    txn = sc.active_transaction()
    if txn is None:
        out("No active transaction.")
        return 0
    out(f"Cancelling transaction: {txn['title']}")
    import signal

    os.kill(int(txn["pid"]), signal.SIGTERM)
    for _ in range(50):
        if sc.active_transaction() is None:
            break
        time.sleep(0.1)
    out("Cancelled.")
    return 0


def cmd_reload(argv: list[str]) -> int:
    parse(argv[1:], set(), set())
    sc.read_daemon_config(reload=True)
    return 0


# ---------------------------------------------------------------- kargs
def edit_kargs(current: list[str], opts: Opts) -> list[str]:
    args = [k for k in current if not k.startswith("ostree=")]
    for kv in opts.all("--delete"):
        args = _delete_karg(args, kv, strict=True)
    for kv in opts.all("--delete-if-present"):
        args = _delete_karg(args, kv, strict=False)
    for kv in opts.all("--replace"):
        args = _replace_karg(args, kv)
    args.extend(opts.all("--append"))
    for kv in opts.all("--append-if-missing"):
        if kv not in args:
            args.append(kv)
    return args


def _delete_karg(args: list[str], kv: str, strict: bool) -> list[str]:
    key = kv.split("=", 1)[0]
    if "=" in kv:
        if kv not in args:
            if strict:
                raise SimError(f"No karg '{kv}' found")
            return args
        out_args = list(args)
        out_args.remove(kv)
        return out_args
    matches = [a for a in args if a.split("=", 1)[0] == key]
    if not matches:
        if strict:
            raise SimError(f"No key '{key}' found")
        return args
    if len(matches) > 1:
        raise SimError(f"Multiple values for key '{key}' found")
    return [a for a in args if a not in matches]


def _replace_karg(args: list[str], spec: str) -> list[str]:
    parts = spec.split("=")
    key = parts[0]
    matches = [a for a in args if a.split("=", 1)[0] == key]
    if not matches:
        raise SimError(f"No key '{key}' found")
    if len(parts) >= 3:
        old = f"{key}={parts[1]}"
        if old not in args:
            raise SimError(f"No karg '{old}' found")
        return [f"{key}={'='.join(parts[2:])}" if a == old else a for a in args]
    if len(matches) > 1:
        raise SimError(f"Multiple values for key '{key}' found")
    return [spec if a == matches[0] else a for a in args]


def cmd_kargs(argv: list[str]) -> int:
    opts = parse(
        argv[1:],
        {"--editor", "--import-proc-cmdline", "--unchanged-exit-77"},
        {"--append", "--append-if-missing", "--delete", "--delete-if-present", "--replace", "--deploy-index"},
    )
    if opts.all("--delete") and opts.all("--replace"):
        raise SimError("Cannot specify both --delete and --replace")
    osname, merge = merge_dep(opts)
    current = sc.kargs_of(merge)
    modifying = any(opts.all(k) for k in ("--append", "--append-if-missing", "--delete", "--delete-if-present", "--replace"))
    if not modifying:
        if opts.has("--reboot"):
            raise SimError("Cannot reboot when kernel arguments not changed")
        out(" ".join(current))
        return 0
    new_args = edit_kargs(current, opts)
    if new_args == [k for k in current if not k.startswith("ostree=")]:
        out("No changes.")
        return UNCHANGED if opts.has("--unchanged-exit-77") else 0
    with sc.transaction(title_of(argv), osname):
        new = en.deploy(
            osname,
            copy_origin(merge) | _override(merge),
            en.base_checksum(merge.checksum),
            kargs=new_args,
            lock=opts.has("--lock-finalization"),
        )
    if opts.has("--reboot"):
        do_reboot()
        return 0
    out("Kernel arguments updated.")
    out(QUEUED)
    return 0 if new else 1


def _override(dep: Deployment) -> dict[str, dict[str, str]]:
    oc = dep.origin.get("origin", {}).get("override-commit")
    return {"origin": {**dep.origin.get("origin", {}), "override-commit": oc}} if oc else {}


# ---------------------------------------------------------------- override / reset / initramfs
def cmd_override(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("remove", "replace", "reset"):
        raise SimError("No subcommand specified" if len(argv) < 2 else f"Unknown \"override\" subcommand '{argv[1]}'")
    sub = argv[1]
    opts = parse(argv[2:], {"-n", "--dry-run", "-a", "--all", "--experimental", "--freeze"}, {"--replace", "--remove", "--from"})
    if (opts.get("--from") or opts.has("--freeze")) and not opts.has("--experimental"):
        raise SimError("Must specify --experimental to use --freeze or --from")
    if sub == "reset" and opts.has("--all") and opts.args:
        raise SimError("Cannot specify PACKAGEs with --all")
    if not opts.args and not (sub == "reset" and opts.has("--all")):
        raise SimError("At least one PACKAGE must be specified")
    check_layering_allowed()
    osname, merge = merge_dep(opts)
    with sc.transaction(title_of(argv), osname):
        groups = copy_origin(merge)
        base = en.base_checksum(merge.checksum)
        {"remove": override_remove, "replace": override_replace, "reset": override_reset}[sub](groups, base, opts)
        # override takes --install/--uninstall like upgrade, rebase and deploy (SUPPORTS_PKG_INSTALLS): same transaction.
        if opts.all("--uninstall"):
            apply_uninstall(groups, opts.all("--uninstall"), opts)
        if opts.all("--install"):
            apply_install(groups, base, opts.all("--install"), opts, sc.is_container_ref(en.origin_ref(merge)))
        if opts.has("--dry-run"):
            out("Exiting because of '--dry-run' option")
            return 0
        new = en.deploy(osname, groups, base, lock=opts.has("--lock-finalization"))
        print_diff(merge.checksum, new.checksum)
    if opts.has("--reboot"):
        do_reboot()
        return 0
    out('Use "rpm-ostree override reset" to undo overrides')
    out(RUN_REBOOT)
    return 0


def override_remove(groups: dict[str, dict[str, str]], base: str, opts: Opts) -> None:
    ov = groups.setdefault("overrides", {})
    removes = sc.kf_list(ov.get("remove"))
    provided = en.base_pkgs(base)
    for p in opts.args:
        if p in removes:
            raise SimError(f"Override already exists for package '{p}'")
        if p not in provided:
            raise SimError(f'Package "{p}" not found')
        removes.append(p)
    ov["remove"] = sc.kf_join(removes)
    if opts.all("--replace"):
        override_replace(groups, base, Opts(args=opts.all("--replace")))


def override_replace(groups: dict[str, dict[str, str]], base: str, opts: Opts) -> None:
    ov = groups.setdefault("overrides", {})
    repl = sc.kf_list(ov.get("replace-local"))
    provided = en.base_pkgs(base)
    for arg in opts.args:
        info = sc.read_local_rpm(Path(arg.removeprefix("file://")))
        if info["name"] not in provided:
            raise SimError(f'Package "{info["name"]}" not found')
        if any(sc.split_nevra(x.split(":", 1)[-1])[0] == info["name"] for x in repl):
            raise SimError(f"Override already exists for package '{info['name']}'")
        repl.append(f"{info['sha256']}:{info['nevra']}")
    ov["replace-local"] = sc.kf_join(repl)
    if opts.all("--remove"):
        override_remove(groups, base, Opts(args=opts.all("--remove")))


def override_reset(groups: dict[str, dict[str, str]], base: str, opts: Opts) -> None:
    ov = groups.setdefault("overrides", {})
    if opts.has("--all"):
        groups["overrides"] = {}
        return
    removes, repl = sc.kf_list(ov.get("remove")), sc.kf_list(ov.get("replace-local"))
    for p in opts.args:
        hit = [x for x in repl if sc.split_nevra(x.split(":", 1)[-1])[0] == p or x.split(":", 1)[-1] == p]
        if p in removes:
            removes.remove(p)
        elif hit:
            repl = [x for x in repl if x not in hit]
        else:
            raise SimError(f"No overrides for package '{p}'")
    ov["remove"], ov["replace-local"] = sc.kf_join(removes), sc.kf_join(repl)


def cmd_reset(argv: list[str]) -> int:
    opts = parse(argv[1:], {"-l", "--overlays", "-o", "--overrides", "-i", "--initramfs"}, set())
    everything = not opts.has("--overlays", "--overrides", "--initramfs")
    osname, merge = merge_dep(opts)
    with sc.transaction(title_of(argv), osname):
        groups = copy_origin(merge)
        if everything or opts.has("--overlays"):
            groups.pop("packages", None)
        if everything or opts.has("--overrides"):
            groups.pop("overrides", None)
        if everything or opts.has("--initramfs"):
            groups.pop("rpmostree", None)
        if opts.all("--install"):
            apply_install(groups, en.base_checksum(merge.checksum), opts.all("--install"), opts, False)
        if en.normalise_origin(groups) == en.normalise_origin(copy_origin(merge)):
            out("No change.")
            return 0
        new = en.deploy(osname, groups, en.base_checksum(merge.checksum), lock=opts.has("--lock-finalization"))
        print_diff(merge.checksum, new.checksum)
    return finish(opts, new, merge.id, QUEUED)


def cmd_initramfs(argv: list[str]) -> int:
    opts = parse(argv[1:], {"--enable", "--disable"}, {"--arg"})
    if opts.has("--enable") and opts.has("--disable"):
        raise SimError("Cannot simultaenously specify --enable and --disable")
    if opts.has("--disable") and opts.all("--arg"):
        raise SimError("Cannot simultaenously specify --disable and --arg")
    if opts.all("--arg") and not opts.has("--enable"):
        raise SimError("--arg must be used with --enable")
    if opts.has("--reboot") and not opts.has("--enable", "--disable"):
        raise SimError("--reboot must be used with --enable or --disable")
    osname, merge = merge_dep(opts)
    rp = merge.origin.get("rpmostree", {})
    enabled = rp.get("regenerate-initramfs") == "true"
    if not opts.has("--enable", "--disable"):
        out(f"Initramfs regeneration: {'enabled' if enabled else 'disabled'}")
        if sc.kf_list(rp.get("initramfs-args")):
            out("Initramfs args: " + " ".join(sc.kf_list(rp.get("initramfs-args"))))
        return 0
    want = opts.has("--enable")
    if want == enabled and not opts.all("--arg"):
        raise SimError(f"initramfs regeneration state is already {'enabled' if want else 'disabled'}")
    check_layering_allowed()
    with sc.transaction(title_of(argv), osname):
        groups = copy_origin(merge)
        g = groups.setdefault("rpmostree", {})
        g["regenerate-initramfs"] = "true" if want else ""
        g["initramfs-args"] = sc.kf_join(opts.all("--arg")) if want else ""
        en.deploy(osname, groups, en.base_checksum(merge.checksum), lock=opts.has("--lock-finalization"))
    out(f"Initramfs regeneration is now: {'enabled' if want else 'disabled'}")
    if opts.has("--reboot"):
        do_reboot()
    return 0


def cmd_initramfs_etc(argv: list[str]) -> int:
    opts = parse(argv[1:], {"--untrack-all", "--force-sync", "--unchanged-exit-77"}, {"--track", "--untrack"})
    osname, merge = merge_dep(opts)
    tracked = sc.kf_list(merge.origin.get("rpmostree", {}).get("initramfs-etc"))
    if not (opts.all("--track") or opts.all("--untrack") or opts.has("--untrack-all", "--force-sync")):
        if not tracked:
            out("No tracked files.")
        else:
            out("Tracked files:")
            for f in tracked:
                out(f"  {f}")
        return 0
    new_list = [] if opts.has("--untrack-all") else [f for f in tracked if f not in opts.all("--untrack")]
    for f in opts.all("--track"):
        if not f.startswith("/etc/"):
            raise SimError(f"Path outside /etc forbidden: {f}")
        if f not in new_list:
            new_list.append(f)
    if new_list == tracked and not opts.has("--force-sync"):
        out("No changes.")
        return UNCHANGED if opts.has("--unchanged-exit-77") else 0
    with sc.transaction(title_of(argv), osname):
        groups = copy_origin(merge)
        groups.setdefault("rpmostree", {})["initramfs-etc"] = sc.kf_join(new_list)
        en.deploy(osname, groups, en.base_checksum(merge.checksum), lock=opts.has("--lock-finalization"))
    if opts.has("--reboot"):
        do_reboot()
        return 0
    out(RUN_REBOOT)
    return 0


def cmd_finalize(argv: list[str]) -> int:
    opts = parse(argv[1:], {"--allow-missing-checksum", "--allow-unlocked"}, set())
    deps = sc.list_deployments()
    staged = next((d for d in deps if d.staged), None)
    if staged is None:
        raise SimError("No pending staged deployment found")
    base = en.base_checksum(staged.checksum)
    if not opts.has("--allow-missing-checksum"):
        if not opts.args:
            raise SimError("Must specify CHECKSUM or --allow-missing-checksum")
        if opts.args[0] != base:
            raise SimError(f"Expected staged base checksum {opts.args[0]}, but found {base}")
    if not staged.finalization_locked and not opts.has("--allow-unlocked"):
        raise SimError("Staged deployment already unlocked")
    en.record_staged(staged, False)
    do_reboot()
    return 0


def cmd_usroverlay(argv: list[str]) -> int:
    proc = sc.admin("unlock", *argv[1:], check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        raise SimError(proc.stderr.strip().removeprefix("error: "))
    return 0


def cmd_refresh_md(argv: list[str]) -> int:
    parse(argv[1:], {"-f", "--force"}, set())
    osname, _ = osname_deps(Opts())
    with sc.transaction(title_of(argv), osname):
        sc.load_catalogue()
    return 0


def cmd_version(_argv: list[str]) -> int:
    out("rpm-ostree:\n Version: '2026.2'\n Git: lab-simulator\n Features:\n  - rust\n  - compose\n  - rhsm")
    return 0


# ---------------------------------------------------------------- lab-only helpers (hidden)
def cmd_sim_boot(_argv: list[str]) -> int:
    dep = en.mark_booted()
    out(f"booted: {dep.id if dep else 'none'}")
    return 0


def cmd_sim_finalize(_argv: list[str]) -> int:
    out(en.finalize_at_shutdown())
    return 0


def cmd_fake_reboot(_argv: list[str]) -> int:
    simulate_reboot()
    return 0


def cmd_sim_busy(argv: list[str]) -> int:
    seconds = float(argv[1]) if len(argv) > 1 else 60.0
    title = " ".join(argv[2:]) or "upgrade --download-only"
    os.environ.setdefault("RPMOSTREE_CLIENT_ID", "gnome-software")
    with sc.transaction(title):
        out(
            f"holding transaction: {title}",
        )
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(seconds)
    return 0


def cmd_sim_driver(argv: list[str]) -> int:
    name = argv[1] if len(argv) > 1 else "LabDriver"
    register_driver(name, os.getpid())
    out(f"registered update driver {name}")
    if "--no-wait" not in argv:
        while True:
            time.sleep(3600)
    return 0


def cmd_sim_lock(_argv: list[str]) -> int:
    deps = sc.list_deployments()
    staged = next((d for d in deps if d.staged), None)
    if staged is None:
        raise SimError("No pending staged deployment found")
    en.record_staged(staged, True)
    out(f"finalization locked: {staged.id}")
    return 0


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "status": lambda a: cmd_status(a[1:]),
    "install": lambda a: cmd_pkg(a, "install"),
    "uninstall": lambda a: cmd_pkg(a, "uninstall"),
    "upgrade": cmd_upgrade,
    "rebase": cmd_rebase,
    "deploy": cmd_deploy,
    "rollback": cmd_rollback,
    "cleanup": cmd_cleanup,
    "cancel": cmd_cancel,
    "reload": cmd_reload,
    "kargs": cmd_kargs,
    "override": cmd_override,
    "reset": cmd_reset,
    "initramfs": cmd_initramfs,
    "initramfs-etc": cmd_initramfs_etc,
    "finalize-deployment": cmd_finalize,
    "usroverlay": cmd_usroverlay,
    "refresh-md": cmd_refresh_md,
    "__sim-boot": cmd_sim_boot,
    "__sim-finalize": cmd_sim_finalize,
    "__fake-reboot": cmd_fake_reboot,
    "__sim-busy": cmd_sim_busy,
    "__sim-driver": cmd_sim_driver,
    "__sim-lock-finalization": cmd_sim_lock,
}
CMD_ALIASES = {
    "update": "upgrade",
    "pkg-add": "install",
    "pkg-remove": "uninstall",
    "remove": "uninstall",
    "makecache": "refresh-md",
    "unlock": "usroverlay",
}
NO_BOOT_CHECK = {"__sim-boot", "__sim-finalize", "__fake-reboot", "__sim-busy", "__sim-driver"}
MUTATING = {
    "install",
    "uninstall",
    "upgrade",
    "rebase",
    "deploy",
    "rollback",
    "cleanup",
    "kargs",
    "override",
    "reset",
    "initramfs",
    "initramfs-etc",
    "finalize-deployment",
    "refresh-md",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        err(
            "Usage:\n  rpm-ostree [OPTION…] COMMAND\n\nBuiltin Commands:\n  "
            + "\n  ".join(sorted(c for c in COMMANDS if not c.startswith("__")))
        )
        return 0 if argv else 1
    if argv[0] == "--version":
        return cmd_version(argv)
    cmd = CMD_ALIASES.get(argv[0], argv[0])
    argv = [cmd, *argv[1:]]
    try:
        if cmd not in COMMANDS:
            raise SimError(f"Unknown command '{cmd}'")
        if cmd not in NO_BOOT_CHECK:
            ostree_booted_check()
        if cmd in MUTATING and sc.read_state("reboot-initiated"):
            raise SimError("Reboot initiated, cannot start new transaction")
        return COMMANDS[cmd](argv)
    except SimError as exc:
        msg = str(exc)
        err(f"error: {msg}")
        if msg.startswith("Transaction in progress"):
            err(" You can cancel the current transaction with `rpm-ostree cancel`")
        return 1
    except Exit as exc:
        return exc.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
