"""immutable.hosts.rpm_repo on real files: Fedora's own .repo files, a new repository with its key, in-place edits."""

from __future__ import annotations

import pytest

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
