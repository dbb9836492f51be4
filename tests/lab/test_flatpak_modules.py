"""The Flatpak modules against lab hosts (real flatpak 1.16, the lab's GPG-signed repo), through ansible-playbook.

Every scenario converges, converges again with changed=false, and in check mode on a drifted host reports the drift
(the diff is asserted) while the host's state hash stays the same. Scenarios from issue 5: Fedora's filtered,
disabled flathub reconciled in place; a wrong GPG key fails and leaves nothing behind; exact-ref installs in one
call; ``latest`` after ``lab sim publish``; ``exclusive`` keeps the runtime; absent; the per-user installation of
``core`` (lingering); overrides merged and exact; bad input. Hosts: kinoite-1 and silverblue-5 only (other test
files own the others).
"""

from __future__ import annotations

import configparser
import json
import shlex
import time
from pathlib import Path

import pytest
from snapshot import assert_unchanged, diff_snapshots, snapshot, snapshot_hash

from immutable_hosts.lab import flatpak_content as fc

pytestmark = pytest.mark.lab

KINOITE = "kinoite-1"
SILVERBLUE = "silverblue-5"
DATA = Path(__file__).resolve().parent / "data" / "flatpak"
WRONG_KEY_FINGERPRINT = "90A30843613F2BC6E425D6B106EACEA8550A1D00"  # data/flatpak/wrong-key.asc

REPO_URL = "http://images.lab:8088/flatpak/repo/"
FLATPAKREPO_URL = "http://images.lab:8088/flatpak/lab.flatpakrepo"
FEDORA_FILTER = str(fc.FEDORA_FILTER)
EDITOR = "app/org.example.Editor/x86_64/stable"
CHAT = "app/org.example.Chat/x86_64/stable"
VIEWER = "app/org.example.Viewer/x86_64/stable"
PLATFORM = "runtime/org.example.Platform/x86_64/24.08"

CONFIG = "/var/lib/flatpak/repo/config"
OVERRIDES_CORE = "/home/core/.local/share/flatpak/overrides"
REMOTE = "immutable.hosts.flatpak_remote"
FLATPAK = "immutable.hosts.flatpak"
OVERRIDE = "immutable.hosts.flatpak_override"

# The lab's own flathub, as an admin would converge it.
FLATHUB = {"name": "flathub", "flatpakrepo_url": FLATPAKREPO_URL, "allow_insecure": True, "no_filter": True}


# ----------------------------------------------------------------------------------------------------------------------
# helpers


def task(name: str, module: str, args: dict, **extra: object) -> str:
    lines = [f"    - name: {name}", f"      {module}: {json.dumps(args)}"]
    lines += [f"      {key}: {json.dumps(value)}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def play(*tasks: str) -> str:
    return "- hosts: all\n  gather_facts: false\n  tasks:\n" + "".join(tasks)


def sh(lab_session, host: str, script: str) -> str:
    """Run a shell script on the host as root; fail the test when it fails."""
    done = lab_session.access(host).run(["sh", "-ec", script])
    assert done.returncode == 0, f"{host}: {script}\nrc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def flatpak_calls(result) -> list[list[str]]:
    """The flatpak processes a module ran (argv after the binary), also when run as another user through runuser."""
    calls = []
    for argv in result.result["commands"]:
        if argv[0].endswith("runuser") and "--" in argv:
            argv = argv[argv.index("--") + 1 :]
        if argv[0].endswith("/flatpak") or argv[0] == "flatpak":
            calls.append(list(argv[1:]))
    return calls


def subcommands(result) -> list[str]:
    return [argv[0] for argv in flatpak_calls(result)]


def run_task(lab, hosts: list[str], name: str, module: str, args: dict, *, check: bool = False):
    """One task on ``hosts``; returns {host: TaskResult}."""
    run = lab.playbook_text(play(task(name, module, args)), hosts=hosts, check=check, diff=True)
    assert run.ok, run.explain()
    return {host: run.task(name, host) for host in hosts}


def converge_twice(lab, hosts: list[str], module: str, args: dict):
    """Run for real, then again: the second run changes nothing. Returns (first, second) as {host: TaskResult}."""
    first = run_task(lab, hosts, "under test", module, args)
    second = run_task(lab, hosts, "under test", module, args)
    for host, result in second.items():
        assert result.changed is False, f"{host}: second run changed: {result.result}"
    return first, second


def check_reports_drift(lab, lab_session, hosts: list[str], module: str, args: dict):
    """Check mode on a drifted host: changed=true with a diff, and the state hash of every host is unchanged."""
    before = {host: snapshot(lab_session.access(host)) for host in hosts}
    results = run_task(lab, hosts, "under test", module, args, check=True)
    for host, result in results.items():
        assert result.changed is True, f"{host}: check mode saw no drift: {result.result}"
        assert result.diff and result.diff["before"] != result.diff["after"], result.result
        after = snapshot(lab_session.access(host))
        assert_unchanged(before[host], after)
        assert snapshot_hash(after) == snapshot_hash(before[host])
    return results


def installed(lab_session, host: str, user: str | None = None) -> dict[str, str]:
    """{full ref: origin} of an installation, read with the host's flatpak."""
    scope = "--user" if user else "--system"
    command = f"flatpak {scope} list --columns=ref,origin,options"
    if user:
        command = f"runuser -u {user} -- {command}"
    refs = {}
    for line in sh(lab_session, host, command).splitlines():
        ref, origin, options = (line.split("\t") + ["", ""])[:3]
        kind = "runtime" if "runtime" in options.split(",") else "app"
        refs[f"{kind}/{ref}"] = origin
    return refs


def remote_row(lab_session, host: str, name: str) -> dict[str, str] | None:
    out = sh(lab_session, host, "flatpak remotes --system --show-disabled --columns=name,url,title,filter,options")
    for line in out.splitlines():
        fields = [*line.split("\t"), "", "", "", ""]  # flatpak drops empty trailing columns
        if fields[0] == name:
            return dict(zip(("name", "url", "title", "filter", "options"), fields))
    return None


def keyfile(text: str) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


def lab_fingerprint(lab_session) -> str:
    fingerprint = fc.key_fingerprint(fc.Layout(lab_session.state_dir / "server").gnupg)
    assert fingerprint, "the lab has no Flatpak signing key"
    return fingerprint


# --- setting hosts up (with the host's own flatpak, not with the modules under test) --------------------------------


def fedora_flathub(lab_session, host: str) -> None:
    """flathub as Fedora ships it: filtered and disabled (the lab provisions it so; undo what earlier tests did)."""
    sh(
        lab_session,
        host,
        f"flatpak remote-modify --system --disable --filter={FEDORA_FILTER} --title={fc.FEDORA_TITLE} flathub",
    )


def open_flathub(lab_session, host: str) -> None:
    sh(lab_session, host, "flatpak remote-modify --system --enable --no-filter flathub")


def system_installs(lab_session, host: str, refs: list[str]) -> None:
    """Exactly ``refs`` (and what they need) in the system installation, each at the remote's latest commit."""
    script = "flatpak uninstall --system --noninteractive -y --all >/dev/null 2>&1 || true\n"
    if refs:
        script += f"flatpak install --system --noninteractive -y flathub {' '.join(refs)} >/dev/null\n"
    sh(lab_session, host, script)


def linger_core(lab_session, host: str) -> None:
    """``core`` lingers (rootless services, /run/user/1000 with its session bus), as the user-scope scenario needs."""
    sh(lab_session, host, "loginctl enable-linger core")
    deadline = time.monotonic() + 30
    while "bus" not in sh(lab_session, host, "ls /run/user/1000 2>/dev/null || true").split():
        assert time.monotonic() < deadline, "core's user manager did not start after enable-linger"
        time.sleep(0.5)
    assert sh(lab_session, host, "ls /var/lib/systemd/linger").split() == ["core"]


# ----------------------------------------------------------------------------------------------------------------------
# flatpak_remote


def test_remote_fedora_flathub_reconciled_in_place(lab, lab_session, lab_hosts):
    hosts = lab_hosts(KINOITE, SILVERBLUE)
    fingerprint = lab_fingerprint(lab_session)
    for host in hosts:
        fedora_flathub(lab_session, host)
        row = remote_row(lab_session, host, "flathub")
        assert {"disabled", "filtered"} <= set(row["options"].split(",")) and row["filter"] == FEDORA_FILTER, row

    # Check mode before converging: the drift is reported, nothing changes.
    checked = check_reports_drift(lab, lab_session, hosts, REMOTE, FLATHUB)
    for result in checked.values():
        before, after = result.diff["before"], result.diff["after"]
        assert before["filter"] == FEDORA_FILTER and before["enabled"] is False and before["title"] == fc.FEDORA_TITLE
        assert after["filter"] is None and after["enabled"] is True and after["title"] == fc.REPO_TITLE
        assert after["url"] == REPO_URL and after["gpg_keys"] == [fingerprint]
        assert subcommands(result) == ["remotes"], "check mode only reads"

    first, second = converge_twice(lab, hosts, REMOTE, FLATHUB)
    for host in hosts:
        assert first[host].changed is True
        modify = flatpak_calls(first[host])[-1]
        assert subcommands(first[host]) == ["remotes", "remote-modify"], "reconciled in place: one remote-modify"
        assert {"--no-filter", "--enable", f"--title={fc.REPO_TITLE}"} <= set(modify) and modify[-1] == "flathub"
        assert first[host].result["remote"] == first[host].diff["after"]
        assert second[host].result["remote"] == first[host].diff["after"]
        assert subcommands(second[host]) == ["remotes"], "a converged remote costs one flatpak process"
        row = remote_row(lab_session, host, "flathub")
        assert row["url"] == REPO_URL and row["filter"] in ("", "-") and "disabled" not in row["options"]
        # Unfiltered and signed by the lab key: the Viewer is visible now, and the summary verifies.
        assert VIEWER in sh(lab_session, host, "flatpak remote-ls --system --columns=ref flathub").split()

    # The same remote given as url + inline key + title converges to the same state with no change.
    armour = (lab_session.state_dir / "server" / "keys" / "lab-flatpak.asc").read_text()
    explicit = {"name": "flathub", "url": REPO_URL, "gpg_key": armour, "title": fc.REPO_TITLE, "no_filter": True}
    again = run_task(lab, hosts, "explicit", REMOTE, explicit)
    for result in again.values():
        assert result.changed is False and result.result["remote"]["gpg_keys"] == [fingerprint]
        assert armour.strip() not in json.dumps(result.result), "keys show as fingerprints, never whole"


def test_remote_wrong_gpg_key_fails_and_leaves_nothing(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(KINOITE)
    access = lab_session.access(host)
    wrong = (DATA / "wrong-key.asc").read_text()
    listing = "ls -A /var/lib/flatpak/repo /var/lib/flatpak/repo/refs/remotes; flatpak remotes --system --show-disabled"
    before, files_before = snapshot(access), sh(lab_session, host, listing)
    config_before = sh(lab_session, host, "cat /var/lib/flatpak/repo/config")

    # Adding a remote whose key did not sign the repo: remote-add fails on the summary signature, and the module
    # removes what flatpak left behind.
    add = {"name": "labwrong", "url": REPO_URL, "gpg_key": wrong}
    run = lab.playbook_text(play(task("wrong key", REMOTE, add)), hosts=[host], diff=True)
    assert run.rc != 0
    result = run.task("wrong key", host)
    assert result.failed and "public key not found" in result.result["msg"], result.result
    assert subcommands(result) == ["remotes", "remote-add", "remote-delete"]
    remote_add = flatpak_calls(result)[1]
    assert any(arg.startswith("--gpg-import=") for arg in remote_add) and remote_add[-2:] == ["labwrong", REPO_URL]
    # Nothing half-added: no remote, no keyring, no refs dir. The one file the failed task may touch is repo/config:
    # flatpak's own remote-add + remote-delete rewrite it (GKeyFile) and leave at most a trailing blank line, so
    # its content is the same as data, and everything else in the state hash is byte for byte the same.
    after = snapshot(access)
    assert set(diff_snapshots(before, after)) <= {CONFIG}, diff_snapshots(before, after)
    config_after = sh(lab_session, host, f"cat {CONFIG}")
    assert config_after in (config_before, config_before + "\n"), (config_before, config_after)
    assert keyfile(config_after) == keyfile(config_before)
    assert sh(lab_session, host, listing) == files_before
    assert remote_row(lab_session, host, "labwrong") is None

    # A remote that exists with the wrong key (as after a key rotation; made with ostree, which does not fetch):
    # installing from it fails on the signature and installs nothing.
    sh(
        lab_session,
        host,
        f"printf '%s' {shlex.quote(wrong)} > /tmp/wrong-key.asc\n"
        "ostree --repo=/var/lib/flatpak/repo remote add --gpg-import=/tmp/wrong-key.asc "
        f"--set=gpg-verify-summary=true --set=xa.title=Wrong labwrong {REPO_URL}\n"
        "rm /tmp/wrong-key.asc",
    )
    try:
        before = snapshot(access)
        refs_before = installed(lab_session, host)
        run = lab.playbook_text(play(task("install", FLATPAK, {"name": [VIEWER], "remote": "labwrong"})), hosts=[host], diff=True)
        assert run.rc != 0
        result = run.task("install", host)
        assert result.failed and "Can't check signature: public key not found" in result.result["msg"], result.result
        assert subcommands(result)[-1] == "install"
        assert_unchanged(before, snapshot(access))
        assert installed(lab_session, host) == refs_before
    finally:
        sh(lab_session, host, "flatpak remote-delete --system --force labwrong")


# ----------------------------------------------------------------------------------------------------------------------
# flatpak (system installation)


def test_install_exact_refs_in_one_call(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(KINOITE)
    open_flathub(lab_session, host)
    system_installs(lab_session, host, [])
    args = {"name": [EDITOR, CHAT], "remote": "flathub"}

    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, args)[host]
    assert checked.diff == {"before": {"refs": {}}, "after": {"refs": {CHAT: "flathub", EDITOR: "flathub"}}}
    assert "install" not in subcommands(checked)

    first, second = converge_twice(lab, [host], FLATPAK, args)
    first, second = first[host], second[host]
    assert first.changed and sorted(first.result["installed"]) == sorted([EDITOR, CHAT])
    installs = [argv for argv in flatpak_calls(first) if argv[0] == "install"]
    assert len(installs) == 1, f"all missing refs install in one call: {installs}"
    assert installs[0][-3:] == ["flathub", EDITOR, CHAT]
    assert len(flatpak_calls(second)) <= 2, second.result["commands"]
    assert subcommands(second) == ["list"]
    assert installed(lab_session, host) == {EDITOR: "flathub", CHAT: "flathub", PLATFORM: "flathub"}

    # Drift: Chat uninstalled by hand. Check mode reports it and changes nothing; a real run puts it back.
    sh(lab_session, host, f"flatpak uninstall --system --noninteractive -y {CHAT}")
    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, args)[host]
    assert CHAT not in checked.diff["before"]["refs"] and checked.diff["after"]["refs"][CHAT] == "flathub"
    assert checked.result["installed"] == [CHAT]
    back, _ = converge_twice(lab, [host], FLATPAK, args)
    assert [argv[-2:] for argv in flatpak_calls(back[host]) if argv[0] == "install"] == [["flathub", CHAT]]
    assert CHAT in installed(lab_session, host)


def test_latest_updates_after_publish_only(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(KINOITE)
    open_flathub(lab_session, host)
    system_installs(lab_session, host, [EDITOR, CHAT])
    args = {"name": ["org.example.Editor", "org.example.Chat//stable"], "remote": "flathub", "state": "latest"}

    # Nothing published yet: latest changes nothing, and reads with two flatpak processes.
    quiet, _ = converge_twice(lab, [host], FLATPAK, args)
    assert quiet[host].changed is False and quiet[host].result["updated"] == []
    assert subcommands(quiet[host]) == ["list", "remote-ls"]
    assert "--updates" in flatpak_calls(quiet[host])[1]

    published = lab_session.lab.publish(EDITOR)
    assert len(published) == 64
    old = sh(lab_session, host, f"flatpak info --system --show-commit {EDITOR}").strip()
    assert old != published

    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, args)[host]
    assert checked.diff["before"]["outdated"] == [EDITOR] and checked.diff["after"]["outdated"] == []
    assert checked.result["updated"] == [EDITOR]

    first, second = converge_twice(lab, [host], FLATPAK, args)
    assert first[host].changed and first[host].result["updated"] == [EDITOR]
    update = [argv for argv in flatpak_calls(first[host]) if argv[0] == "install"]
    assert len(update) == 1 and "--or-update" in update[0] and update[0][-2:] == ["flathub", EDITOR]
    assert sh(lab_session, host, f"flatpak info --system --show-commit {EDITOR}").strip() == published
    assert second[host].result["updated"] == [] and len(flatpak_calls(second[host])) <= 2


def test_exclusive_keeps_runtime_then_absent(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(KINOITE)
    open_flathub(lab_session, host)
    system_installs(lab_session, host, [EDITOR, CHAT, VIEWER])
    args = {"name": [EDITOR, CHAT], "remote": "flathub", "exclusive": True}

    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, args)[host]
    assert VIEWER in checked.diff["before"]["refs"] and VIEWER not in checked.diff["after"]["refs"]
    assert checked.diff["after"]["refs"] == {CHAT: "flathub", EDITOR: "flathub", PLATFORM: "flathub"}
    assert checked.result["removed"] == [VIEWER]

    first, second = converge_twice(lab, [host], FLATPAK, args)
    assert first[host].result["removed"] == [VIEWER] and first[host].result["installed"] == []
    assert [argv[-1] for argv in flatpak_calls(first[host]) if argv[0] == "uninstall"] == [VIEWER]
    assert installed(lab_session, host) == {EDITOR: "flathub", CHAT: "flathub", PLATFORM: "flathub"}
    assert len(flatpak_calls(second[host])) <= 2

    absent = {"name": ["org.example.Chat"], "state": "absent"}
    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, absent)[host]
    assert CHAT in checked.diff["before"]["refs"] and CHAT not in checked.diff["after"]["refs"]
    first, second = converge_twice(lab, [host], FLATPAK, absent)
    assert first[host].result["removed"] == [CHAT]
    assert subcommands(second[host]) == ["list"]
    assert installed(lab_session, host) == {EDITOR: "flathub", PLATFORM: "flathub"}


# ----------------------------------------------------------------------------------------------------------------------
# flatpak + flatpak_remote (the per-user installation of core)


def test_user_installation_of_core(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(SILVERBLUE)
    linger_core(lab_session, host)
    sh(
        lab_session,
        host,
        "runuser -u core -- flatpak --user uninstall --noninteractive -y --all >/dev/null 2>&1 || true\n"
        "runuser -u core -- flatpak --user remote-delete --force lab 2>/dev/null || true",
    )
    system_before = installed(lab_session, host)
    remote = {"name": "lab", "flatpakrepo_url": FLATPAKREPO_URL, "allow_insecure": True, "user": "core"}

    checked = check_reports_drift(lab, lab_session, [host], REMOTE, remote)[host]
    assert checked.diff["before"] == {"state": "absent"}
    assert checked.diff["after"]["url"] == REPO_URL and checked.diff["after"]["gpg_keys"] == [lab_fingerprint(lab_session)]
    first, second = converge_twice(lab, [host], REMOTE, remote)
    runs = first[host].result["commands"]
    assert all(argv[0].endswith("runuser") and argv[1:4] == ["-u", "core", "--"] for argv in runs), runs
    assert subcommands(first[host]) == ["remotes", "remote-add"] and "--user" in flatpak_calls(first[host])[1]
    assert subcommands(second[host]) == ["remotes"]

    apps = {"name": [EDITOR], "remote": "lab", "user": "core"}
    checked = check_reports_drift(lab, lab_session, [host], FLATPAK, apps)[host]
    assert checked.diff == {"before": {"refs": {}}, "after": {"refs": {EDITOR: "lab"}}}
    first, second = converge_twice(lab, [host], FLATPAK, apps)
    assert first[host].result["installed"] == [EDITOR]
    assert all(argv[0].endswith("runuser") for argv in first[host].result["commands"]), first[host].result["commands"]
    assert len(flatpak_calls(second[host])) <= 2
    assert installed(lab_session, host, user="core") == {EDITOR: "lab", PLATFORM: "lab"}
    assert installed(lab_session, host) == system_before, "the system installation is not touched"
    owners = sh(lab_session, host, "stat -c %U /home/core/.local/share/flatpak/repo/config /home/core/.local/share/flatpak/app")
    assert owners.split() == ["core", "core"]

    absent = {"name": [EDITOR], "state": "absent", "user": "core"}
    first, _ = converge_twice(lab, [host], FLATPAK, absent)
    assert first[host].result["removed"] == [EDITOR]
    assert EDITOR not in installed(lab_session, host, user="core")


# ----------------------------------------------------------------------------------------------------------------------
# flatpak_override


def test_override_merge_exact_and_reset(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(SILVERBLUE)
    path = "/var/lib/flatpak/overrides/org.example.Editor"
    # An override flatpak itself wrote, which merge mode keeps.
    sh(
        lab_session,
        host,
        "rm -rf /var/lib/flatpak/overrides\n"
        "flatpak override --system --share=network --talk-name=org.freedesktop.Notifications org.example.Editor",
    )
    merge = {
        "app": "org.example.Editor",
        "filesystems": ["xdg-download:ro", "~/src:create"],
        "nofilesystems": ["home"],
        "sockets": ["wayland"],
        "nosockets": ["x11"],
        "environment": {"EDITOR_MODE": "lab"},
        "unset_environment": ["GTK_THEME"],
    }
    checked = check_reports_drift(lab, lab_session, [host], OVERRIDE, merge)[host]
    assert checked.diff["before"] == {"shared": ["network"], "session_bus": {"org.freedesktop.Notifications": "talk"}}
    merged = {
        "filesystems": ["!home", "xdg-download:ro", "~/src:create"],
        "shared": ["network"],
        "sockets": ["!x11", "wayland"],
        "environment": {"EDITOR_MODE": "lab"},
        "unset_environment": ["GTK_THEME"],
        "session_bus": {"org.freedesktop.Notifications": "talk"},
    }
    assert checked.diff["after"] == merged

    first, second = converge_twice(lab, [host], OVERRIDE, merge)
    assert first[host].diff["after"] == merged and first[host].result["path"] == path
    assert first[host].result["commands"] == [] and second[host].result["commands"] == []
    # flatpak reads the keyfile the module wrote as the module meant it.
    shown = sh(lab_session, host, "flatpak override --system --show org.example.Editor")
    for line in (
        "shared=network;",
        "sockets=wayland;!x11;",
        "filesystems=!home;xdg-download:ro;~/src:create;",
        "unset-environment=GTK_THEME;",
        "org.freedesktop.Notifications=talk",
        "EDITOR_MODE=lab",
    ):
        assert line in shown.splitlines(), shown

    # Drift made with flatpak: X11 allowed again. Check mode reports it; merge puts !x11 back.
    sh(lab_session, host, "flatpak override --system --socket=x11 org.example.Editor")
    checked = check_reports_drift(lab, lab_session, [host], OVERRIDE, merge)[host]
    assert "x11" in checked.diff["before"]["sockets"] and "!x11" in checked.diff["after"]["sockets"]
    converge_twice(lab, [host], OVERRIDE, merge)

    exact = {
        "app": "org.example.Editor",
        "mode": "exact",
        "filesystems": ["xdg-download:ro"],
        "sockets": ["wayland"],
        "environment": {"EDITOR_MODE": "lab"},
    }
    checked = check_reports_drift(lab, lab_session, [host], OVERRIDE, exact)[host]
    assert checked.diff["before"] == merged
    exactly = {"filesystems": ["xdg-download:ro"], "sockets": ["wayland"], "environment": {"EDITOR_MODE": "lab"}}
    assert checked.diff["after"] == exactly
    first, _ = converge_twice(lab, [host], OVERRIDE, exact)
    assert first[host].diff["after"] == exactly
    text = sh(lab_session, host, f"cat {path}")
    assert "network" not in text and "Notifications" not in text and "GTK_THEME" not in text, text

    reset = {"app": "org.example.Editor", "state": "absent"}
    first, _ = converge_twice(lab, [host], OVERRIDE, reset)
    assert first[host].diff == {"before": exactly, "after": {}}
    assert sh(lab_session, host, f"test ! -e {path} && echo gone").strip() == "gone"


def test_override_for_user_core(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(SILVERBLUE)
    path = f"{OVERRIDES_CORE}/org.example.Chat"
    sh(lab_session, host, f"rm -f {path}")
    args = {"app": "org.example.Chat", "user": "core", "filesystems": ["xdg-documents:ro"], "nosockets": ["x11"]}
    checked = check_reports_drift(lab, lab_session, [host], OVERRIDE, args)[host]
    assert checked.diff == {"before": {}, "after": {"filesystems": ["xdg-documents:ro"], "sockets": ["!x11"]}}
    first, _ = converge_twice(lab, [host], OVERRIDE, args)
    assert first[host].result["path"] == path and first[host].result["commands"] == []
    assert sh(lab_session, host, f"stat -c %U {OVERRIDES_CORE}").strip() == "core"
    shown = sh(lab_session, host, "runuser -u core -- flatpak override --user --show org.example.Chat")
    assert "filesystems=xdg-documents:ro;" in shown and "sockets=!x11;" in shown, shown


def test_override_for_user_core_file_owned_by_core(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(SILVERBLUE)
    path = f"{OVERRIDES_CORE}/org.example.Viewer"
    sh(lab_session, host, f"rm -f {path}")
    converge_twice(lab, [host], OVERRIDE, {"app": "org.example.Viewer", "user": "core", "sockets": ["wayland"]})
    assert sh(lab_session, host, f"stat -c '%U:%G %a' {path}").split() == ["core:core", "644"]


# ----------------------------------------------------------------------------------------------------------------------
# bad input


BAD_INPUTS = [
    (FLATPAK, {"name": ["org.example"], "remote": "flathub"}, "is not a valid flatpak ID"),
    (FLATPAK, {"name": ["app/org.example.Editor/x86_64"], "remote": "flathub"}, "a full ref is app/ID/ARCH/BRANCH"),
    (FLATPAK, {"name": [EDITOR]}, "state=present needs remote"),
    (FLATPAK, {"name": [EDITOR], "remote": "nosuch"}, "remote nosuch is not configured in this installation"),
    (FLATPAK, {"name": [VIEWER], "remote": "flathub"}, "remote flathub is disabled; enable it with flatpak_remote"),
    (FLATPAK, {"name": [EDITOR], "state": "absent", "exclusive": True}, "exclusive applies to state=present or latest"),
    (FLATPAK, {"name": [EDITOR], "remote": "flathub", "user": "nobody-here"}, "user 'nobody-here' does not exist"),
    (REMOTE, {"name": "plain", "url": REPO_URL, "gpg_verify": False}, "confirm with allow_insecure=true"),
    (REMOTE, {"name": "keyless", "url": REPO_URL, "gpg_key": "/etc/no-such-key.gpg"}, "cannot read the GPG key"),
    (REMOTE, {"name": "ftp", "url": "ftp://images.lab/repo/"}, "is not an http(s):// or file:// URL"),
    (REMOTE, {"name": "flathub", "filter": "/etc/no-such.filter"}, "filter file /etc/no-such.filter does not exist"),
    (REMOTE, {"name": "new-remote"}, "adding it needs url or flatpakrepo_url"),
    (OVERRIDE, {"app": "not an id", "sockets": ["x11"]}, "is not a valid flatpak application ID"),
    (OVERRIDE, {"app": "org.example.Editor", "filesystems": ["/srv:bogus"]}, "the mode after ':' is ro, rw or create"),
    (OVERRIDE, {"app": "org.example.Editor", "sockets": ["x11"], "nosockets": ["x11"]}, "sockets and nosockets both list x11"),
    (OVERRIDE, {"app": "org.example.Editor", "environment": {"1BAD": "x"}}, "'1BAD' is not a valid variable name"),
]


def test_bad_input_fails_with_message_and_changes_nothing(lab, lab_session, lab_hosts):
    hosts = lab_hosts(KINOITE, SILVERBLUE)
    for host in hosts:
        fedora_flathub(lab_session, host)  # disabled, as Fedora ships it
        sh(lab_session, host, f"flatpak uninstall --system --noninteractive -y {VIEWER} >/dev/null 2>&1 || true")
    before = {host: snapshot(lab_session.access(host)) for host in hosts}
    tasks = [task(f"bad {i}", module, args, ignore_errors=True) for i, (module, args, _msg) in enumerate(BAD_INPUTS)]
    run = lab.playbook_text(play(*tasks), hosts=hosts, diff=True)
    assert run.rc == 0, run.explain()
    for host in hosts:
        for i, (module, args, message) in enumerate(BAD_INPUTS):
            result = run.task(f"bad {i}", host)
            assert result.status == "failed" and result.changed is False, (module, args, result.result)
            assert message in result.result["msg"], (module, args, result.result["msg"])
            assert not {"install", "uninstall", "remote-add", "remote-modify"} & set(subcommands(result)), result.result
        assert_unchanged(before[host], snapshot(lab_session.access(host)))


# ----------------------------------------------------------------------------------------------------------------------
# root acting in core's home: the attacks of the security audit (issue 12), done by core over its own SSH login


def as_core(lab_session, host: str, script: str) -> str:
    done = lab_session.access(host).run(["sh", "-ec", script], user="core")
    assert done.returncode == 0, f"{host} as core: {script}\nrc {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_linked_user_installation_never_becomes_the_system_one(lab, lab_session, lab_hosts):
    """core replaces ~/.local/share/flatpak with a link to /var/lib/flatpak: before, core's override landed in the
    system overrides, owned by core, granting any app filesystems=host for every user."""
    (host,) = lab_hosts(SILVERBLUE)
    as_core(
        lab_session,
        host,
        "mkdir -p ~/.local/share && rm -rf ~/.local/share/flatpak.saved && "
        "(test ! -e ~/.local/share/flatpak || mv ~/.local/share/flatpak ~/.local/share/flatpak.saved) && "
        "ln -s /var/lib/flatpak ~/.local/share/flatpak",
    )
    before = snapshot(lab_session.access(host))
    args = {"app": "org.example.Chat", "user": "core", "filesystems": ["host"]}
    try:
        for check in (True, False):
            run = lab.playbook_text(
                play(task("attack", OVERRIDE, args, ignore_errors=True)), hosts=[host], check=check, diff=True
            )
            result = run.task("attack", host)
            assert result.status == "failed" and result.changed is False, result.result
            assert "/home/core/.local/share/flatpak is a symbolic link (to /var/lib/flatpak)" in result.result["msg"]
        assert not sh(lab_session, host, "grep -l filesystems=host /var/lib/flatpak/overrides/* 2>/dev/null || true").strip()
        assert_unchanged(before, snapshot(lab_session.access(host)))
    finally:
        as_core(
            lab_session,
            host,
            "rm -f ~/.local/share/flatpak && (test ! -e ~/.local/share/flatpak.saved || "
            "mv ~/.local/share/flatpak.saved ~/.local/share/flatpak)",
        )
    converge_twice(lab, [host], OVERRIDE, {"app": "org.example.Chat", "user": "core", "sockets": ["wayland"]})
    assert sh(lab_session, host, f"stat -c '%U %a' {OVERRIDES_CORE}/org.example.Chat").split() == ["core", "644"]


def test_an_override_linked_to_shadow_is_never_read_or_shown(lab, lab_session, lab_hosts):
    (host,) = lab_hosts(SILVERBLUE)
    as_core(lab_session, host, f"mkdir -p {OVERRIDES_CORE} && ln -sf /etc/shadow {OVERRIDES_CORE}/org.example.Leak")
    try:
        for check in (True, False):
            run = lab.playbook_text(
                play(task("leak", OVERRIDE, {"app": "org.example.Leak", "user": "core", "state": "absent"}, ignore_errors=True)),
                hosts=[host],
                check=check,
                diff=True,
            )
            result = run.task("leak", host)
            assert result.status == "failed" and "org.example.Leak is a symbolic link" in result.result["msg"]
            assert "root:" not in run.stdout and "root:" not in json.dumps(result.result)
        assert sh(lab_session, host, "stat -c %U /etc/shadow").strip() == "root"
    finally:
        as_core(lab_session, host, f"rm -f {OVERRIDES_CORE}/org.example.Leak")
