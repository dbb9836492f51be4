"""The rendered units against Podman's real Quadlet generator, and the generated services against
``systemd-analyze verify``.

The generator is looked up at $IMMUTABLE_HOSTS_QUADLET_GENERATOR, else at /usr/libexec/podman/quadlet; without it
these tests are skipped.  Nothing is downloaded here.  To run them on a machine without podman, extract the
generator from trixie's podman package with a private APT_CONFIG (../shared/reference/lab-feasibility.md §3) and
point the variable at ``usr/libexec/podman/quadlet`` inside the extracted tree; the binary links only libc.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.common._runner import Runner
from ansible_collections.immutable.hosts.plugins.module_utils.image import _context as image_context
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet as quadlet
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet_keys as keys
from ansible_collections.immutable.hosts.tests.unit.plugins.module_utils.quadlet_cases import CASES, SERVICES, golden, split_words
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import run_unit

STANDARD = "/usr/libexec/podman/quadlet"


def find_generator():
    path = os.environ.get("IMMUTABLE_HOSTS_QUADLET_GENERATOR") or STANDARD
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return None


GENERATOR = find_generator()
pytestmark = pytest.mark.skipif(
    GENERATOR is None,
    reason="no Quadlet generator: set IMMUTABLE_HOSTS_QUADLET_GENERATOR or install podman (%s)" % STANDARD,
)


def dryrun(directory, user=True):
    env = dict(os.environ, QUADLET_UNIT_DIRS=str(directory), LC_ALL="C")
    proc = subprocess.run(
        quadlet.generator_argv(GENERATOR, user), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return quadlet.parse_dryrun(proc.stdout, proc.stderr, proc.returncode)


def write_goldens(directory):
    for name, kind in CASES:
        (directory / keys.file_name(name, kind)).write_text(golden(name, kind))


def test_generator_is_podman_5():
    version = subprocess.run([GENERATOR, "-version"], capture_output=True, text=True, timeout=30, check=False).stdout.strip()
    assert version.split(".")[0] == "5", version


@pytest.mark.parametrize("user", [True, False], ids=["user", "system"])
def test_every_golden_unit_passes_the_generator(tmp_path, user):
    write_goldens(tmp_path)
    result = dryrun(tmp_path, user)
    assert result["rc"] == 0 and result["errors"] == []
    assert sorted(result["units"]) == sorted(SERVICES.values())
    for (name, kind), service in SERVICES.items():
        assert quadlet.generator_verdict(result, keys.file_name(name, kind), service) is None


def test_quoting_survives_the_generator(tmp_path):
    write_goldens(tmp_path)
    web = dryrun(tmp_path)["units"]["web.service"]
    start = next(line for line in web.splitlines() if line.startswith("ExecStart="))
    assert split_words(start.split("=", 1)[1])[-3:] == ["localhost/bb:latest", "/bin/sleep", "1000"]
    assert '--env "GREETING=hello world"' in start and "--publish 8443:443" in start


@pytest.mark.parametrize(
    "text, message",
    [
        ("[Container]\nImage=localhost/bb:latest\nFooBar=1\n", "unsupported key 'FooBar' in group 'Container'"),
        ("[Container]\nExec=/bin/true\n", "no Image or Rootfs key specified"),
        ("[Container]\nImage=localhost/bb:latest\nthis is not valid\n", "not a key-value pair"),
        (
            "[Container]\nImage=localhost/bb:latest\nNetwork=missing.network\n",
            "requested Quadlet unit missing.network was not found",
        ),
        ("[Container]\nImage=localhost/bb:latest\nGroup=1234\n", "invalid Group set without User"),
    ],
)
def test_an_invalid_unit_is_rejected_with_the_generators_message(tmp_path, text, message):
    (tmp_path / "bad.container").write_text(text)
    verdict = quadlet.generator_verdict(dryrun(tmp_path), "bad.container", "bad.service")
    assert verdict is not None and message in verdict


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_generated_services_pass_systemd_analyze_verify(tmp_path):
    units = tmp_path / "units"
    units.mkdir()
    write_goldens(units)
    generated = dryrun(units, user=False)["units"]
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/podman").write_text("#!/bin/sh\nexit 0\n")
    (root / "usr/bin/podman").chmod(0o755)
    system_units = next(path for path in ("/usr/lib/systemd/system", "/lib/systemd/system") if os.path.isdir(path))
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    for service, text in generated.items():
        (root / "etc/systemd/system" / service).write_text(text)
    for service in sorted(generated):
        proc = subprocess.run(
            ["systemd-analyze", "verify", "--root=%s" % root, "/etc/systemd/system/" + service],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (service, proc.returncode, proc.stderr) == (service, 0, "")


# --- the module with the real generator; systemd answers from a table ------------------------------------------


class HalfReal:
    """The generator really runs; systemctl and runuser answer from a table."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def spawn(self, argv, env, timeout, stdin, cwd):
        key = " ".join([os.path.basename(argv[0]), *argv[1:]])
        self.calls.append(key)
        if argv[0] == STANDARD:
            # The host's generator at its standard path is this one (from the lab image when not installed here).
            real = [GENERATOR, *argv[1:]]
            proc = subprocess.run(real, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False)
            return proc.returncode, proc.stdout, proc.stderr
        return self.answers[key]

    def runner(self):
        return Runner(spawn=self.spawn, exists=lambda path: path in (STANDARD, "/usr/bin/systemctl", "/usr/sbin/runuser"))


@pytest.fixture
def module_host(tmp_path, capsys):
    if os.geteuid() != 0:
        pytest.skip("writes files owned by another user: needs root")
    home = tmp_path / "home/core"
    home.mkdir(parents=True)
    os.chown(home, 1000, 1000)
    (tmp_path / "run/user/1000/systemd").mkdir(parents=True)
    (tmp_path / "run/user/1000/systemd/private").write_text("")
    entry = pwd.struct_passwd(("core", "x", 1000, 1000, "", "/home/core", "/bin/bash"))

    def run(args, tools):
        host = Host(runner=tools.runner(), root=str(tmp_path), passwd={"core": entry}, euid=0)
        return run_unit(quadlet.UNIT, dict(args, user="core"), host, capsys)

    run.unit_dir = home / ".config/containers/systemd"
    return run


AS_CORE = "runuser -u core -- env XDG_RUNTIME_DIR=/run/user/1000 DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus systemctl --user "


WEB = {"image": "localhost/bb:latest", "exec": ["/bin/sh", "-c", "sleep 1000"], "network": "none", "environment": {"G": "a b"}}


def test_module_writes_a_unit_the_generator_accepts(module_host):
    tools = HalfReal(
        {
            AS_CORE + "show --property=LoadState,ActiveState,SubState,NeedDaemonReload,FragmentPath,SourcePath web.service": (
                0,
                "LoadState=not-found\nActiveState=inactive\nSubState=dead\nNeedDaemonReload=no\nFragmentPath=\nSourcePath=\n",
                "",
            ),
            AS_CORE + "daemon-reload": (0, "", ""),
            AS_CORE + "start web.service": (0, "", ""),
        }
    )
    result = module_host({"name": "web", "container": WEB}, tools)
    assert result["changed"] is True and result["validated"] is True and result["generator"] == STANDARD
    assert (module_host.unit_dir / "web.container").exists()


def test_module_fails_with_the_generators_message_and_writes_nothing(module_host):
    tools = HalfReal({})
    result = module_host({"name": "web", "container": {"image": "localhost/bb:latest", "group": "1234"}}, tools)
    assert result["failed"] is True and "invalid Group set without User" in result["msg"]
    assert len(tools.calls) == 1 and not (module_host.unit_dir / "web.container").exists()


# --- an image's build context: its system units validated together by the real generator ------------------------------

IMAGE = "quay.io/fedora/fedora-silverblue@sha256:" + "4f" * 32


def context_run(tmp_path, capsys, quadlets: list) -> tuple:
    tools = HalfReal({})
    host = Host(runner=tools.runner(), root=str(tmp_path), machine="x86_64")
    args = {"path": "/srv/context", "os": {"rebase": {"image": IMAGE}}, "quadlets": quadlets, "_ansible_check_mode": True}
    return run_unit(image_context.UNIT, args, host, capsys), tools.calls


def test_image_context_units_pass_the_generator_with_their_bound_image(tmp_path, capsys):
    units = [
        {"name": "web", "container": {"image": "quay.io/example/web:1", "network": ["app.network"]}},
        {"name": "app", "kind": "network", "network": {}},
    ]
    result, calls = context_run(tmp_path, capsys, units)
    assert result["changed"] is True, result
    assert calls == ["quadlet -dryrun"]  # one run for all the image's units, in check mode too
    assert "web.container" in result["containerfile"]


def test_image_context_refuses_a_unit_the_generator_refuses(tmp_path, capsys):
    units = [{"name": "web", "container": {"image": "quay.io/example/web:1", "network": ["missing.network"]}}]
    result, calls = context_run(tmp_path, capsys, units)
    assert calls == ["quadlet -dryrun"]
    assert result["failed"] is True
    assert "the Quadlet generator refuses web.container" in result["msg"]
    assert not (tmp_path / "srv/context").exists()
