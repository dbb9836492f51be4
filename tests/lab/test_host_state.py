"""immutable.hosts.host_state against a real lab host: one document (packages and kernel arguments, the update policy,
a Flatpak remote with an app and an override, a rootless user with a secret and a Quadlet container that reads it)
converged in one module run.

Check mode first (the drift of a fresh host, nothing changed on it), then the run, then again (nothing changes, and
every tool's state was read once for all resources), then a changed secret restarts the container that reads it.
Only ``silverblue-7`` is used; the other hosts belong to other test files.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from harness import Lab, RunResult, TaskResult
from snapshot import HostAccess, assert_unchanged, snapshot

pytestmark = pytest.mark.lab

HOST = "silverblue-7"
IMAGE = "localhost/lab/busybox:latest"
FLATPAKREPO_URL = "http://images.lab:8088/flatpak/lab.flatpakrepo"
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep infinity & wait"]


def document(token: str) -> dict[str, Any]:
    return {
        "os": {
            "packages": {"name": ["htop"]},
            "kargs": [{"args": ["quiet", "lab.marker=1"]}],
            "update_policy": {"policy": "stage"},
        },
        "flatpak": [
            {
                "scope": "system",
                "remotes": [{"name": "lab", "flatpakrepo_url": FLATPAKREPO_URL, "allow_insecure": True}],
                "apps": [{"name": "org.example.Editor", "remote": "lab"}],
                "overrides": [{"app": "org.example.Editor", "sockets": ["wayland"]}],
            }
        ],
        "users": [
            {
                "name": "core",
                "secrets": [{"name": "token", "data": token}],
                "quadlets": [
                    {
                        "name": "reader",
                        "container": {"image": IMAGE, "pull": "never", "network": "none", "exec": SLEEPER, "secret": ["token"]},
                        "enabled": True,
                    }
                ],
            }
        ],
        "facts": True,
    }


@pytest.fixture
def host(lab_hosts, lab_session) -> HostAccess:
    lab_hosts(HOST)
    access = lab_session.access(HOST)
    online = access.run(["systemctl", "is-active", "network-online.target"])
    assert online.stdout.strip() == "active", online.stdout + online.stderr
    return access


def run(lab: Lab, doc: dict[str, Any], *, check: bool = False) -> TaskResult:
    text = yaml.safe_dump(
        [{"hosts": HOST, "gather_facts": False, "tasks": [{"name": "host", "immutable.hosts.host_state": doc}]}],
        sort_keys=False,
    )
    result: RunResult = lab.playbook_text(text, hosts=[HOST], check=check, diff=True)
    assert result.ok, result.explain()
    return result.task("host", HOST)


def resources(result: TaskResult) -> dict[str, dict[str, Any]]:
    return {entry["resource"]: entry for entry in result.result["resources"]}


def calls(result: TaskResult, *words: str) -> int:
    """How many commands the run started whose argv (binary basename and arguments) begins with ``words``."""
    found = 0
    for argv in result.result["commands"]:
        tail = [arg.rsplit("/", 1)[-1] if i == 0 else arg for i, arg in enumerate(argv)]
        if "runuser" in tail[0]:
            tail = tail[tail.index("--") + 1 :]
            while tail and (tail[0] in ("env", "-u") or "=" in tail[0]):
                tail = tail[2:] if tail[0] == "-u" else tail[1:]
        if tail[: len(words)] == list(words):
            found += 1
    return found


def service(host: HostAccess) -> dict[str, str]:
    argv = ["runuser", "-u", "core", "--", "env", "XDG_RUNTIME_DIR=/run/user/1000"]
    argv += ["systemctl", "--user", "show", "-p", "ActiveState,InvocationID", "reader.service"]
    done = host.run(argv)
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def test_one_document_converges_the_whole_host_in_one_module_run(lab: Lab, host: HostAccess) -> None:
    before = snapshot(host)
    checked = run(lab, document("s3cret-one"), check=True)
    assert checked.changed
    assert_unchanged(before, snapshot(host))
    predicted = {name for name, entry in resources(checked).items() if entry["changed"]}
    assert {"rpm_ostree_packages", "kargs", "flatpak_remote lab", "quadlet reader (user=core)"} <= predicted, predicted
    # the user's resources are predicted too; the diff names each resource
    headers = [diff.get("before_header") for diff in checked.diff]
    assert "flatpak_remote lab" in headers and "kargs" in headers, headers
    assert checked.result["reboot_required"] is True

    first = run(lab, document("s3cret-one"))
    assert first.changed
    assert calls(first, "rpm-ostree", "install") + calls(first, "rpm-ostree", "kargs", "--unchanged-exit-77") <= 2
    reasons = first.result["reboot_reasons"]
    assert first.result["reboot_required"] and {"layering-changed", "kargs-changed"} <= set(reasons), reasons
    assert service(host)["ActiveState"] == "active"
    assert "s3cret" not in str(first.result)

    again = run(lab, document("s3cret-one"))
    assert not again.changed, [name for name, entry in resources(again).items() if entry["changed"]]
    # every tool's state read once for all resources: two kargs-and-packages resources, three Flatpak resources
    assert calls(again, "rpm-ostree", "status") == 1
    assert calls(again, "flatpak", "list") == 1 and calls(again, "flatpak", "remotes") == 1
    assert calls(again, "systemctl", "--user", "show") == 1
    assert not any(calls(again, *words) for words in (("rpm-ostree", "install"), ("flatpak", "install")))
    assert again.result["ansible_facts"]["ostree"]["pending"]["requested_packages"] == ["htop"]


def test_a_changed_secret_restarts_the_container_that_reads_it(lab: Lab, host: HostAccess) -> None:
    run(lab, document("s3cret-one"))
    started = service(host)
    before = snapshot(host)
    checked = run(lab, document("s3cret-two"), check=True)
    assert_unchanged(before, snapshot(host))
    assert resources(checked)["quadlet reader (user=core)"]["actions"] == ["restart"]

    changed = run(lab, document("s3cret-two"))
    assert resources(changed)["podman_secret token (user=core)"]["changed"] is True
    assert resources(changed)["quadlet reader (user=core)"]["actions"] == ["restart"]
    assert service(host)["InvocationID"] != started["InvocationID"]
    assert "s3cret" not in str(changed.result)
    secret = host.run(["podman", "secret", "inspect", "--showsecret", "--format", "{{.SecretData}}", "token"], user="core")
    assert secret.stdout == "s3cret-two\n", secret.stdout + secret.stderr

    assert not run(lab, document("s3cret-two")).changed
