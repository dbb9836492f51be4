"""Contract §2.10: message catalogue, stdout/stderr split and exit codes (77 included)."""

from __future__ import annotations

import fcntl
import time

from conftest import Host

from immutable_hosts.lab import ostree_content

QUEUED = 'Changes queued for next boot. Run "systemctl reboot" to start a reboot'
BUSY_HINT = " You can cancel the current transaction with `rpm-ostree cancel`"


def rc_out(host: Host, *args: str) -> tuple[int, str, str]:
    p = host.rpm_ostree(*args, check=False)
    return p.returncode, p.stdout, p.stderr


def test_no_change_install_uninstall_deploy(make_host) -> None:
    host: Host = make_host()
    assert rc_out(host, "install", "htop")[0] == 0
    for flags, code in (([], 0), (["--unchanged-exit-77"], 77)):
        rc, out, _ = rc_out(host, "install", "--idempotent", *flags, "htop")
        assert (rc, out.strip()) == (code, "No change.")
        rc, out, _ = rc_out(host, "uninstall", "--idempotent", *flags, "tmux")
        assert (rc, out.strip()) == (code, "No change.")
    booted = host.status()["deployments"][1]["checksum"]
    rc, out, _ = rc_out(host, "deploy", "--unchanged-exit-77", booted)
    assert rc == 77 and "No change." in out


def test_upgrade_messages(make_host) -> None:
    host: Host = make_host()
    assert rc_out(host, "upgrade") == (0, "No upgrade available.\n", "")
    assert rc_out(host, "upgrade", "--unchanged-exit-77")[0] == 77
    rc, out, err = rc_out(host, "upgrade", "--check")
    assert (rc, out.strip()) == (77, "No updates available.") and "may be unreliable" in err
    ostree_content.publish(host.server, "fedora/41/x86_64/silverblue")
    rc, out, _ = rc_out(host, "upgrade", "--check")
    assert rc == 0 and out.startswith("AvailableUpdate:")
    assert host.status()["cached-update"]["ref-has-new-commit"] is True
    rc, out, _ = rc_out(host, "upgrade")
    assert rc == 0 and out.rstrip().endswith('Run "systemctl reboot" to start a reboot')
    assert host.status()["deployments"][0]["staged"] is True
    assert rc_out(host, "status", "--pending-exit-77")[0] == 77


def test_kargs_messages(make_host) -> None:
    host: Host = make_host()
    rc, out, _ = rc_out(host, "kargs")
    assert rc == 0 and "rhgb quiet" in out and "ostree=" in out
    assert rc_out(host, "kargs", "--append-if-missing=quiet") == (0, "No changes.\n", "")
    assert rc_out(host, "kargs", "--append-if-missing=quiet", "--unchanged-exit-77")[0] == 77
    rc, out, _ = rc_out(host, "kargs", "--append=foo=bar")
    assert rc == 0 and QUEUED in out
    assert "foo=bar" in rc_out(host, "kargs")[1]
    rc, _, err = rc_out(host, "kargs", "--delete=nosuch")
    assert (rc, err.strip()) == (1, "error: No key 'nosuch' found")


def test_kargs_replace_splits_at_the_first_equals_sign_and_quotes_group(make_host) -> None:
    """ostree_kernel_args_new_replace: KEY=OLD=NEW splits OLD at its first '=', so root=UUID=1111 cannot be replaced
    that way; libostree's split_kernel_args keeps a double-quoted value with blanks as one argument."""
    host: Host = make_host()
    assert rc_out(host, "kargs", "--append=root=UUID=1111")[0] == 0
    rc, _, err = rc_out(host, "kargs", "--replace=root=UUID=1111=UUID=2222")
    assert (rc, err.strip()) == (1, "error: No karg 'root=UUID' found")
    rc, out, _ = rc_out(host, "kargs", "--delete-if-present=root=UUID=1111", "--append-if-missing=root=UUID=2222")
    assert rc == 0 and QUEUED in out
    args = rc_out(host, "kargs")[1].split()
    assert "root=UUID=2222" in args and "root=UUID=1111" not in args
    assert rc_out(host, "kargs", '--append=dyndbg="file drm* +p"')[0] == 0
    assert rc_out(host, "kargs", '--append-if-missing=dyndbg="file drm* +p"', "--unchanged-exit-77")[0] == 77


def test_package_errors(make_host) -> None:
    host: Host = make_host()
    rc, out, err = rc_out(host, "install", "htop")
    assert rc == 0 and out.rstrip().endswith(QUEUED) and err == ""
    assert rc_out(host, "install", "htop") == (1, "", "error: Package/capability 'htop' is already requested\n")
    rc, _, err = rc_out(host, "install", "firefox")
    assert rc == 1 and err.startswith('error: "firefox" is already provided by: firefox-')
    assert err.rstrip().endswith("Use --allow-inactive to explicitly require it.")
    rc, _, err = rc_out(host, "install", "--idempotent", "firefox")
    assert rc == 1 and "already provided by" in err
    rc, out, _ = rc_out(host, "install", "--allow-inactive", "firefox")
    assert rc == 0 and "Inactive requests:" in out
    dep0 = host.status()["deployments"][0]
    assert "firefox" in dep0["requested-packages"] and "firefox" not in dep0["packages"]
    assert rc_out(host, "install", "nosuch")[2] == "error: Packages not found: nosuch\n"
    assert rc_out(host, "uninstall", "tmux") == (1, "", "error: Package/capability 'tmux' is not currently requested\n")


def test_rebase_equal_and_driver(make_host) -> None:
    host: Host = make_host()
    rc, _, err = rc_out(host, "rebase", "fedora:fedora/41/x86_64/silverblue")
    assert (rc, err) == (1, "error: Old and new refs are equal: fedora:fedora/41/x86_64/silverblue\n")
    driver = host.spawn("__sim-driver", "Zincati")
    try:
        for _ in range(50):
            if host.status()["update-driver"]:
                break
            time.sleep(0.1)
        rc, _, err = rc_out(host, "upgrade")
        assert rc == 1 and err.startswith("error: Updates and deployments are driven by Zincati")
        assert "Use --bypass-driver" in err
        assert rc_out(host, "upgrade", "--bypass-driver")[0] == 0
    finally:
        driver.terminate()
        driver.wait(timeout=10)
    rc, out, _ = rc_out(host, "rebase", "fedora/42/x86_64/silverblue")
    assert rc == 0 and QUEUED in out
    assert host.status()["deployments"][0]["origin"] == "fedora:fedora/42/x86_64/silverblue"


def test_busy_and_sysroot_lock(make_host) -> None:
    host: Host = make_host()
    busy = host.spawn("__sim-busy", "30", "upgrade --download-only")
    try:
        for _ in range(50):
            if host.status()["transaction"]:
                break
            time.sleep(0.1)
        rc, out, err = rc_out(host, "install", "htop")
        assert (rc, out) == (1, "")
        assert err == f"error: Transaction in progress: upgrade --download-only\n{BUSY_HINT}\n"
        assert rc_out(host, "status", "--json")[0] == 0
        rc, out, _ = rc_out(host, "cancel")
        assert rc == 0 and "Cancelling transaction: upgrade --download-only" in out
    finally:
        busy.terminate()
        busy.wait(timeout=10)
    assert rc_out(host, "cancel") == (0, "No active transaction.\n", "")
    with (host.root / "ostree/lock").open("a") as fh:
        fcntl.lockf(fh, fcntl.LOCK_EX)
        assert rc_out(host, "install", "htop") == (1, "", "error: System transaction in progress\n")


def test_finalization_lock_discarded_at_reboot(make_host) -> None:
    host: Host = make_host()
    host.rpm_ostree("install", "--lock-finalization", "htop")
    staged = host.status()["deployments"][0]
    assert staged["staged"] and staged["finalization-locked"] is True
    host.reboot()
    doc = host.status()
    assert len(doc["deployments"]) == 1 and doc["deployments"][0]["booted"]
    host.rpm_ostree("install", "htop")
    host.reboot()
    assert host.status()["deployments"][0]["packages"] == ["htop"]


def test_rollback_and_cleanup(make_host) -> None:
    host: Host = make_host()
    host.rpm_ostree("install", "htop")
    rc, _, err = rc_out(host, "rollback")
    assert (rc, err) == (1, "error: Staged deployment (remove with cleanup -p)\n")
    assert rc_out(host, "cleanup", "-p")[0] == 0
    assert len(host.status()["deployments"]) == 1
    assert rc_out(host, "cleanup", "-p") == (0, "Deployments unchanged.\n", "")
    rc, _, err = rc_out(host, "cleanup")
    assert rc == 1 and "At least one cleanup option" in err


def test_not_booted_and_unknown(make_host) -> None:
    host: Host = make_host()
    rc, _, err = rc_out(host, "frobnicate")
    assert (rc, err) == (1, "error: Unknown command 'frobnicate'\n")
    rc, _, err = rc_out(host, "status", "--json", "--jsonpath=$.deployments")
    assert (rc, err) == (1, "error: Cannot specify both --json and --jsonpath\n")
    rc, out, _ = rc_out(host, "status", "--jsonpath=$.deployments[0].booted")
    assert rc == 0 and out.split() == ["[", "true", "]"]


def test_rebase_installs_in_the_same_transaction(make_host) -> None:
    host: Host = make_host()
    before = [d["id"] for d in host.status()["deployments"]]
    # firefox is in the base: the whole rebase is refused and leaves no deployment
    rc, _, err = rc_out(host, "rebase", "--install=htop", "--install=firefox", "fedora/42/x86_64/silverblue")
    assert rc == 1 and err.startswith('error: "firefox" is already provided by: firefox-')
    assert [d["id"] for d in host.status()["deployments"]] == before
    rc, out, _ = rc_out(host, "rebase", "--install=htop", "--install=tmux", "fedora/42/x86_64/silverblue")
    assert rc == 0 and out.rstrip().endswith(QUEUED)
    new = host.status()["deployments"][0]
    assert new["origin"] == "fedora:fedora/42/x86_64/silverblue"
    assert new["requested-packages"] == ["htop", "tmux"] and len(host.status()["deployments"]) == len(before) + 1
