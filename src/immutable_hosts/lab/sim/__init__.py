"""rpm-ostree and bootc simulators for lab hosts.

The simulator code lives in ``hostlib/`` (stdlib only, runs with the image's python3) and is copied to
``/usr/lib/rpm-ostree-sim/`` in the image; ``/usr/bin/rpm-ostree`` and ``/usr/bin/bootc`` are tiny launchers. The
lab's own hooks (the boot cycle, ``lab sim``) go through ``/usr/lib/rpm-ostree-sim/lab-sim``, so that a host whose
image has no rpm-ostree (profile ``bootc-only``: :func:`strip_rpm_ostree` removes the binary, its configuration and
its units) still boots and still answers ``lab sim``.

Root prefix: every path the simulators touch is relative to ``$IMMUTABLE_HOSTS_SIM_ROOT`` (default ``/``).
The contract tests set it to a temp sysroot on the machine; nothing outside the lab knows about it.

Boot cycle (units installed here):
* ``rpm-ostree-sim-boot.service`` (early, before sshd): discards a staged deployment that was never
  finalised, then makes ``deployments[0]`` the booted one: it records it in ``/run/rpm-ostree-sim/booted.json``
  and writes ``/run/ostree-booted`` as libostree's GVariant ``{'backing-root-device-inode': <(dev, ino)>}`` of
  that deployment dir, so the image's libostree (>= 2024.2) also reports it as booted.
* its ``ExecStop`` (at shutdown) plays ``ostree-finalize-staged``: a finalization-locked staged deployment is
  undeployed, otherwise older unpinned rollbacks are pruned as ostree does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

HOSTLIB = Path(__file__).resolve().parent / "hostlib"
LIB_DIR = "usr/lib/rpm-ostree-sim"
IMAGE_PACKAGES: list[str] = ["ostree", "python3", "e2fsprogs", "rpm"]

_LAUNCHER = """#!/usr/bin/python3
import sys
sys.path.insert(0, "/usr/lib/rpm-ostree-sim")
from {module} import main
sys.exit(main(sys.argv[1:]))
"""

BOOT_UNIT = """[Unit]
Description=Lab: make the default OSTree deployment the booted one (bootloader + finalize-staged stand-in)
DefaultDependencies=no
After=local-fs.target systemd-tmpfiles-setup.service
Before=sysinit.target ssh.service rpm-ostreed-automatic.timer
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/rpm-ostree-sim/lab-sim __sim-boot
ExecStop=/usr/lib/rpm-ostree-sim/lab-sim __sim-finalize

[Install]
WantedBy=sysinit.target
"""

AUTOMATIC_SERVICE = """[Unit]
Description=rpm-ostree Automatic Update (lab simulator)
ConditionPathExists=/run/ostree-booted

[Service]
Type=simple
ExecStart=/usr/bin/rpm-ostree upgrade --quiet --trigger-automatic-update-policy
"""

AUTOMATIC_TIMER = """[Unit]
Description=rpm-ostree Automatic Update Trigger
ConditionPathExists=/run/ostree-booted

[Timer]
OnBootSec=1h
OnUnitInactiveSec=1d
Persistent=true

[Install]
WantedBy=timers.target
"""

# bootc's own units (bootc systemd/): the timer image-mode systems enable for unattended updates; the service
# applies, i.e. reboots into, what it stages.
BOOTC_SERVICE = """[Unit]
Description=Apply bootc updates
Documentation=man:bootc(8)
ConditionPathExists=/run/ostree-booted

[Service]
Type=oneshot
ExecStart=/usr/bin/bootc upgrade --apply --quiet
"""

BOOTC_TIMER = """[Unit]
Description=Apply bootc updates
Documentation=man:bootc(8)
ConditionPathExists=/run/ostree-booted

[Timer]
OnBootSec=1h
OnUnitInactiveSec=8h
RandomizedDelaySec=2h

[Install]
WantedBy=timers.target
"""

# What a bootc-only host's image does not have (strip_rpm_ostree).
RPM_OSTREE_FILES = (
    "usr/bin/rpm-ostree",
    "etc/rpm-ostreed.conf",
    "usr/lib/systemd/system/rpm-ostreed-automatic.service",
    "usr/lib/systemd/system/rpm-ostreed-automatic.timer",
)

DAEMON_CONF = """# Entries in this file show the compile time defaults.
# You can change settings by editing this file.
# For option meanings, see rpm-ostreed.conf(5).

[Daemon]
#AutomaticUpdatePolicy=none
#IdleExitTimeout=60
#LockLayering=false
#Recommends=true
"""


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def install_into_rootfs(rootfs: Path) -> None:
    """Install simulators, units, /etc/rpm-ostreed.conf and the package catalogue into an image rootfs."""
    from immutable_hosts.lab import ostree_content  # local import: ostree_content imports this package

    lib = rootfs / LIB_DIR
    lib.mkdir(parents=True, exist_ok=True)
    for src in HOSTLIB.glob("*.py"):
        if src.name != "__init__.py":
            shutil.copy2(src, lib / src.name)
    _write(rootfs / "usr/bin/rpm-ostree", _LAUNCHER.format(module="rpm_ostree"), 0o755)
    _write(rootfs / LIB_DIR / "lab-sim", _LAUNCHER.format(module="rpm_ostree"), 0o755)
    _write(rootfs / "usr/bin/bootc", _LAUNCHER.format(module="bootc"), 0o755)
    units = rootfs / "usr/lib/systemd/system"
    _write(units / "rpm-ostree-sim-boot.service", BOOT_UNIT)
    _write(units / "rpm-ostreed-automatic.service", AUTOMATIC_SERVICE)
    _write(units / "rpm-ostreed-automatic.timer", AUTOMATIC_TIMER)
    _write(units / "bootc-fetch-apply-updates.service", BOOTC_SERVICE)
    _write(units / "bootc-fetch-apply-updates.timer", BOOTC_TIMER)
    wants = rootfs / "etc/systemd/system/sysinit.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "rpm-ostree-sim-boot.service"
    if not link.is_symlink():
        link.symlink_to("/usr/lib/systemd/system/rpm-ostree-sim-boot.service")
    if not (rootfs / "etc/rpm-ostreed.conf").exists():
        _write(rootfs / "etc/rpm-ostreed.conf", DAEMON_CONF)
    import json

    _write(rootfs / "usr/share/rpm-ostree-sim/repos.json", json.dumps(ostree_content.package_catalogue(), sort_keys=True))


def strip_rpm_ostree(root: Path) -> None:
    """A host of profile ``bootc-only``: its root (an overlay over the shared image) loses rpm-ostree, its daemon's
    configuration and its automatic-update units, as an image-mode system built without rpm-ostree has none."""
    for relative in RPM_OSTREE_FILES:
        path = root / relative
        if path.is_file() or path.is_symlink():
            path.unlink()


def host_command(action: str, *args: str) -> list[str]:
    """argv to run inside a host for ``lab sim HOST busy|driver|lock-finalization``."""
    if action == "busy":
        if not args:
            raise ValueError("busy needs SECONDS [TITLE]")
        return [f"/{LIB_DIR}/lab-sim", "__sim-busy", *args]
    if action == "driver":
        if len(args) != 1:
            raise ValueError("driver needs NAME")
        unit = "lab-driver-" + "".join(c if c.isalnum() else "-" for c in args[0].lower()) + ".service"
        return ["systemd-run", f"--unit={unit}", "--collect", f"/{LIB_DIR}/lab-sim", "__sim-driver", args[0]]
    if action == "lock-finalization":
        return [f"/{LIB_DIR}/lab-sim", "__sim-lock-finalization"]
    raise ValueError(f"unknown sim action {action}")
