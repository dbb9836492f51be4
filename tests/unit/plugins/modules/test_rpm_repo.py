"""immutable.hosts.rpm_repo on real files: Fedora's own .repo files, a new repository with its key, in-place edits."""

from __future__ import annotations

import urllib.error

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.ostree._repos import parse_sections
from ansible_collections.immutable.hosts.plugins.modules import rpm_repo as module
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import run_file_unit

# Fedora 41's fedora-cisco-openh264.repo, as shipped (two sections, comments, a disabled debuginfo repo).
OPENH264 = """[fedora-cisco-openh264]
name=Fedora $releasever openh264 (From Cisco) - $basearch
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-cisco-openh264-$releasever&arch=$basearch
type=rpm
enabled=0
metadata_expire=14d
repo_gpgcheck=0
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=True

[fedora-cisco-openh264-debuginfo]
name=Fedora $releasever openh264 (From Cisco) - $basearch - Debug
metalink=https://mirrors.fedoraproject.org/metalink?repo=fedora-cisco-openh264-debug-$releasever&arch=$basearch
type=rpm
enabled=0
metadata_expire=14d
repo_gpgcheck=0
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-fedora-$releasever-$basearch
skip_if_unavailable=True
"""
KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGN0\n=lab1\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.fixture
def run(tmp_path, capsys):
    repos = tmp_path / "etc/yum.repos.d"
    repos.mkdir(parents=True)
    (repos / "fedora-cisco-openh264.repo").write_text(OPENH264)

    def run(args, check=False):
        return run_file_unit(module.UNIT, args, tmp_path, capsys, check)

    run.repos = repos
    run.root = tmp_path
    return run


def test_a_new_repository_with_its_key_converges(run):
    args = {
        "name": "lab-extras",
        "baseurl": ["http://images.lab:8088/repos/lab-extras/fedora-$releasever/$basearch/"],
        "key": KEY,
    }
    checked = run(args, check=True)
    assert checked["changed"] is True and not (run.repos / "lab-extras.repo").exists() and not (run.root / "etc/pki").exists()
    first = run(args)
    assert first["changed"] is True and first["diff"] == checked["diff"]
    section = parse_sections((run.repos / "lab-extras.repo").read_text())["lab-extras"]
    assert section == {
        "name": "lab-extras",
        "baseurl": "http://images.lab:8088/repos/lab-extras/fedora-$releasever/$basearch/",
        "enabled": "1",
        "gpgcheck": "1",
        "gpgkey": "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-lab-extras",
    }
    assert (run.root / "etc/pki/rpm-gpg/RPM-GPG-KEY-lab-extras").read_text() == KEY
    assert run(args)["changed"] is False
    assert run({"name": "lab-extras", "state": "absent"})["changed"] is True and not (run.repos / "lab-extras.repo").exists()
    assert run({"name": "lab-extras", "state": "absent"})["changed"] is False


def test_a_repository_defined_elsewhere_is_edited_in_place(run):
    result = run({"name": "fedora-cisco-openh264", "enabled": True})
    assert result["changed"] is True and result["path"] == "/etc/yum.repos.d/fedora-cisco-openh264.repo"
    text = (run.repos / "fedora-cisco-openh264.repo").read_text()
    assert text == OPENH264.replace("enabled=0", "enabled=1", 1)  # one line, every other line kept
    assert run({"name": "fedora-cisco-openh264", "enabled": True})["changed"] is False
    assert run({"name": "fedora-cisco-openh264", "gpgcheck": True, "repo_gpgcheck": False})["changed"] is False  # 1 == True
    priority = run({"name": "fedora-cisco-openh264-debuginfo", "priority": 90})
    assert (
        priority["changed"] is True
        and parse_sections((run.repos / "fedora-cisco-openh264.repo").read_text())["fedora-cisco-openh264-debuginfo"]["priority"]
        == "90"
    )
    removed = run({"name": "fedora-cisco-openh264-debuginfo", "state": "absent"})
    assert removed["changed"] is True
    assert list(parse_sections((run.repos / "fedora-cisco-openh264.repo").read_text())) == ["fedora-cisco-openh264"]


def test_switching_to_baseurl_drops_the_metalink(run):
    result = run({"name": "fedora-cisco-openh264", "baseurl": ["https://mirror.example.com/openh264/$releasever/$basearch/"]})
    section = parse_sections((run.repos / "fedora-cisco-openh264.repo").read_text())["fedora-cisco-openh264"]
    assert (
        result["changed"] is True and "metalink" not in section and section["baseurl"].startswith("https://mirror.example.com/")
    )


def test_a_duplicate_id_is_refused(run):
    (run.repos / "other.repo").write_text("[fedora-cisco-openh264]\nbaseurl=https://x.example.com/\n")
    result = run({"name": "fedora-cisco-openh264", "enabled": True})
    assert result["failed"] is True and "also defined in" in result["msg"]


@pytest.mark.parametrize(
    "args, message",
    [
        ({"name": "lab extras", "baseurl": ["http://x/"]}, "is a repository id"),
        ({"name": "x", "baseurl": ["javascript:alert(1)"]}, "is not an http(s)://"),
        ({"name": "x", "baseurl": ["http://x/\u2028"]}, "U+2028"),
        ({"name": "x", "baseurl": ["http://x/"], "metalink": "http://y/"}, "mutually exclusive"),
        ({"name": "x", "enabled": True}, "needs baseurl, metalink or mirrorlist"),
        ({"name": "x", "baseurl": ["http://x/"], "priority": 0}, "between 1"),
        ({"name": "x", "baseurl": ["http://x/"], "key": "not a key"}, "ASCII-armored"),
        ({"name": "x", "baseurl": ["http://x/"], "description": "a\nb"}, "line"),
    ],
)
def test_bad_input_writes_nothing(run, args, message):
    result = run(args)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert sorted(p.name for p in run.repos.iterdir()) == ["fedora-cisco-openh264.repo"] and not (run.root / "etc/pki").exists()
    assert (run.repos / "fedora-cisco-openh264.repo").read_text() == OPENH264


# --- COPR -------------------------------------------------------------------------------------------------------------

# What copr.fedorainfracloud.org serves for /coprs/atim/starship/repo/fedora-42/dnf.repo?arch=aarch64.
STARSHIP = """[copr:copr.fedorainfracloud.org:atim:starship]
name=Copr repo for starship owned by atim
baseurl=https://download.copr.fedorainfracloud.org/results/atim/starship/fedora-$releasever-$basearch/
type=rpm-md
skip_if_unavailable=True
gpgcheck=1
gpgkey=https://download.copr.fedorainfracloud.org/results/atim/starship/pubkey.gpg
repo_gpgcheck=0
enabled=1
enabled_metadata=1
"""
STARSHIP_FILE = "_copr:copr.fedorainfracloud.org:atim:starship.repo"
FEDORA_42 = 'NAME="Fedora Linux"\nVERSION="42.20250410.0 (Silverblue)"\nID=fedora\nVERSION_ID=42\nVARIANT_ID=silverblue\n'


class Hub(Host):
    """A host whose HTTPS reads are answered from ``served`` (URL -> text; missing: 404), as COPR answers them."""

    served: dict = {}
    asked: list = []

    def _fetch(self, location, limit):
        self.asked.append(location)
        if location not in self.served:
            raise urllib.error.HTTPError(location, 404, "Not Found", {}, None)
        return self.served[location].encode()[:limit]


@pytest.fixture
def copr(tmp_path, capsys, monkeypatch):
    (tmp_path / "etc/yum.repos.d").mkdir(parents=True)
    (tmp_path / "etc/os-release").write_text(FEDORA_42)
    monkeypatch.setattr(
        Hub, "served", {"https://copr.fedorainfracloud.org/coprs/atim/starship/repo/fedora-42/dnf.repo?arch=aarch64": STARSHIP}
    )
    monkeypatch.setattr(Hub, "asked", [])

    def run(args, check=False):
        return run_file_unit(module.UNIT, args, tmp_path, capsys, check, host_class=Hub, machine="aarch64")

    run.repos = tmp_path / "etc/yum.repos.d"
    return run


def test_a_copr_project_is_the_file_its_hub_serves_for_the_release_and_arch(copr):
    checked = copr({"copr": "atim/starship"}, check=True)
    assert checked["changed"] is True and list(copr.repos.iterdir()) == []
    assert checked["diff"][0]["after"] == STARSHIP and checked["diff"][0]["after_header"] == "/etc/yum.repos.d/" + STARSHIP_FILE
    first = copr({"copr": "atim/starship"})
    assert first["changed"] is True and (copr.repos / STARSHIP_FILE).read_text() == STARSHIP
    assert first["copr"] == {
        "project": "atim/starship",
        "chroot": "fedora-42-aarch64",
        "url": "https://copr.fedorainfracloud.org/coprs/atim/starship/repo/fedora-42/dnf.repo?arch=aarch64",
    }
    assert first["repo"]["gpgcheck"] == "1"
    assert copr({"copr": "atim/starship"})["changed"] is False
    # enabled and priority on top of COPR's file; the rest of it as served
    prioritized = copr({"copr": "atim/starship", "priority": 50, "enabled": False})
    assert prioritized["changed"] is True
    assert (copr.repos / STARSHIP_FILE).read_text() == STARSHIP.replace("enabled=1\n", "enabled=0\n").replace(
        "enabled_metadata=1\n", "enabled_metadata=1\npriority=50\n"
    )
    assert copr({"copr": "atim/starship", "priority": 50, "enabled": False})["changed"] is False
    # edited by hand: put back as served
    (copr.repos / STARSHIP_FILE).write_text(STARSHIP.replace("gpgcheck=1", "gpgcheck=0"))
    assert copr({"copr": "atim/starship"})["changed"] is True and (copr.repos / STARSHIP_FILE).read_text() == STARSHIP
    # absent removes the file without asking the hub
    asked = len(Hub.asked)
    assert copr({"copr": "atim/starship", "state": "absent"}, check=True)["changed"] is True
    assert copr({"copr": "atim/starship", "state": "absent"})["changed"] is True and list(copr.repos.iterdir()) == []
    assert copr({"copr": "atim/starship", "state": "absent"})["changed"] is False and len(Hub.asked) == asked


def test_a_copr_chroot_the_project_does_not_build_is_a_clear_failure(copr):
    result = copr({"copr": "atim/starship", "copr_chroot": "fedora-40-x86_64"})
    assert result["failed"] is True and "no fedora-40-x86_64 repository for atim/starship" in result["msg"]
    assert list(copr.repos.iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        ({"copr": "atim"}, "owner/project"),
        ({"copr": "atim/star ship"}, "owner/project"),
        ({"copr": "atim/starship", "baseurl": ["https://x/"]}, "baseurl cannot be set"),
        ({"copr": "atim/starship", "gpgcheck": False}, "gpgcheck cannot be set"),
        ({"copr": "atim/starship", "copr_hub": "http://copr.example.com"}, "reached over https"),
        ({"copr": "atim/starship", "copr_hub": "copr.example.com/x"}, "host name"),
        ({"copr": "atim/starship", "copr_chroot": "fedora42"}, "distribution-release-arch"),
        ({"name": "x", "baseurl": ["https://x/"], "copr_chroot": "fedora-42-x86_64"}, "for copr"),
        ({"name": "x", "copr": "atim/starship"}, "mutually exclusive"),
        ({"state": "absent"}, "one of the following"),
    ],
)
def test_bad_copr_input_writes_nothing(copr, args, message):
    result = copr(args)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert list(copr.repos.iterdir()) == []


def test_copr_on_an_os_copr_does_not_build_for_asks_for_a_chroot(copr, tmp_path):
    (tmp_path / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    result = copr({"copr": "atim/starship"})
    assert result["failed"] is True and "give copr_chroot" in result["msg"] and "Debian GNU/Linux 12" in result["msg"]
