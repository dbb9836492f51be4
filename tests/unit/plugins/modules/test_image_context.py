"""immutable.hosts.image_context: a host's document compiled into a build context, checked, written, rewritten.

The document is the demo's kind of workstation: a Silverblue image by digest, layered packages and a base package
removed, a repository with its key, kernel arguments to add and to remove, two Flatpak remotes, apps by ID and by
branch, an override, a system Quadlet unit with its image, and the resources an image cannot carry (a rootless user
with a unit and a secret).  The tmpfiles.d lines are read back by the real ``systemd-tmpfiles`` where it exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common._host import Host
from ansible_collections.immutable.hosts.plugins.module_utils.image import _context as context
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.helpers import Tools, run_file_unit, run_unit
from ansible_collections.immutable.hosts.tests.unit.plugins.modules.test_image_policy import COSIGN_PUB

DIGEST = "sha256:" + "4f" * 32
BASE = "quay.io/fedora/fedora-silverblue@" + DIGEST
KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBGN0\n=lab1\n-----END PGP PUBLIC KEY BLOCK-----\n"
CONTEXT = "/srv/images/silverblue"
# The override as flatpak writes it (a GKeyFile: the value's backslash doubled).
OVERRIDE = '[Context]\nfilesystems=home:ro;\n\n[Environment]\nGREETING=hello "world" 100%\\\\n\n'


def document() -> dict:
    return {
        "os": {
            "rebase": {"image": BASE},
            "packages": {"name": ["htop", "tmux", "zsh"], "override_remove": ["firefox", "firefox-langpacks"]},
            "repos": [{"name": "lab", "baseurl": ["http://repo.example.test/$releasever/"], "key": KEY, "description": "Lab"}],
            "kargs": [
                {"args": ["preempt=full", "loglevel=3"], "state": "present"},
                {"args": ["rhgb"], "state": "absent"},
            ],
        },
        "flatpak": [
            {
                "remotes": [
                    {"name": "lab", "url": "https://flatpak.example.test/repo/", "title": "Lab apps"},
                    {"name": "slow", "url": "https://flatpak.example.test/slow/", "priority": 5},
                ],
                "apps": [
                    {"name": ["org.example.Editor", "org.example.Viewer//beta"], "remote": "lab"},
                    {"name": ["org.example.Gone"], "remote": "lab", "state": "absent"},
                ],
                "overrides": [
                    {
                        "app": "org.example.Editor",
                        "filesystems": ["home:ro"],
                        "environment": {"GREETING": 'hello "world" 100%\\n'},
                    }
                ],
            },
            {"user": "core", "apps": [{"name": ["org.example.Chat"], "remote": "lab"}]},
        ],
        "quadlets": [{"name": "web", "container": {"image": "quay.io/example/web:1", "exec": "sleep infinity"}, "enabled": True}],
        "users": [{"name": "core", "quadlets": [{"name": "mine", "container": {"image": "quay.io/example/mine:1"}}]}],
        "secrets": [{"name": "db-password", "data": "s3cret"}],
    }


def run(tmp_path: Path, capsys, check: bool = False, **args) -> dict:
    given = {**document(), "path": CONTEXT, "labels": {"io.immutable-hosts.source": "group silverblue"}}
    given.update(args)
    return run_file_unit(context.UNIT, given, tmp_path, capsys, check, machine="x86_64")


def on_disk(tmp_path: Path) -> dict:
    top = tmp_path / CONTEXT.lstrip("/")
    return {str(p.relative_to(top)): p.read_text() for p in sorted(top.rglob("*")) if p.is_file()}


def test_the_containerfile_builds_from_the_digest_in_exec_form(tmp_path, capsys):
    result = run(tmp_path, capsys)
    assert result["changed"] is True
    assert result["base_image"] == BASE
    assert result["containerfile"].splitlines()[1:] == [
        "FROM " + BASE,
        'LABEL "io.immutable-hosts.packages"="htop,tmux,zsh" \\',
        '      "io.immutable-hosts.source"="group silverblue"',
        "COPY tree/ /",
        'RUN ["dnf", "-y", "remove", "firefox", "firefox-langpacks"]',
        'RUN ["dnf", "-y", "install", "htop", "tmux", "zsh"]',
        'RUN ["dnf", "clean", "all"]',
        'RUN ["ln", "-sf", "/usr/share/containers/systemd/web.container", "/usr/lib/bootc/bound-images.d/web.container"]',
        'RUN ["systemctl", "enable", "immutable-hosts-flatpak-install.service"]',
        'RUN ["bootc", "container", "lint"]',
    ]
    assert on_disk(tmp_path)["Containerfile"] == result["containerfile"]


def test_rpm_ostree_as_the_package_manager(tmp_path, capsys):
    lines = run(tmp_path, capsys, package_manager="rpm-ostree", lint=False)["containerfile"].splitlines()
    assert 'RUN ["rpm-ostree", "override", "remove", "firefox", "firefox-langpacks"]' in lines
    assert 'RUN ["rpm-ostree", "install", "-y", "htop", "tmux", "zsh"]' in lines
    assert not [line for line in lines if "bootc" in line and "lint" in line]


def test_each_resource_lands_where_an_image_based_system_reads_it(tmp_path, capsys):
    run(tmp_path, capsys)
    files = on_disk(tmp_path)
    assert sorted(files) == [
        ".immutable-hosts-context",
        "Containerfile",
        "tree/etc/flatpak/remotes.d/lab.flatpakrepo",
        "tree/etc/pki/rpm-gpg/RPM-GPG-KEY-lab",
        "tree/etc/yum.repos.d/lab.repo",
        "tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml",
        "tree/usr/lib/systemd/system/immutable-hosts-flatpak-install.service",
        "tree/usr/lib/tmpfiles.d/immutable-hosts-flatpak-overrides.conf",
        "tree/usr/share/containers/systemd/web.container",
    ]
    assert files["tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml"].splitlines()[1] == 'kargs = ["preempt=full", "loglevel=3"]'
    assert files["tree/etc/pki/rpm-gpg/RPM-GPG-KEY-lab"] == KEY
    repo = files["tree/etc/yum.repos.d/lab.repo"]
    assert "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-lab" in repo and "gpgcheck=1" in repo
    assert "baseurl=http://repo.example.test/$releasever/" in repo
    flatpakrepo = files["tree/etc/flatpak/remotes.d/lab.flatpakrepo"].splitlines()
    assert flatpakrepo[1:] == ["[Flatpak Repo]", "Version=1", "Url=https://flatpak.example.test/repo/", "Title=Lab apps"]
    unit = files["tree/usr/share/containers/systemd/web.container"]
    assert "Image=quay.io/example/web:1" in unit
    assert "GlobalArgs=--storage-opt=additionalimagestore=/usr/lib/bootc/storage" in unit
    service = files["tree/usr/lib/systemd/system/immutable-hosts-flatpak-install.service"].splitlines()
    assert [line for line in service if line.startswith("ExecStart=")] == [
        "ExecStart=/usr/bin/flatpak install --system --noninteractive --or-update lab app/org.example.Viewer/x86_64/beta",
        "ExecStart=/usr/bin/flatpak install --system --noninteractive --or-update --arch=x86_64 lab org.example.Editor",
    ]
    assert "ConditionPathExists=!/var/lib/immutable-hosts/flatpak-install.done" in service


def test_what_an_image_cannot_carry_is_named_with_the_reason(tmp_path, capsys):
    runtime = {entry["resource"]: entry["reason"] for entry in run(tmp_path, capsys)["runtime"]}
    assert runtime == {
        "kargs": "bootc's kargs.d adds kernel arguments; removing them is a change to a host",
        "flatpak_remote slow": "a .flatpakrepo in remotes.d cannot say priority",
        "flatpak": "removing apps is a change to a host's installation",
        "flatpak (user=core)": "a user's Flatpak installation lives in the user's home, on the host",
        "rootless_user core": "users, their subordinate ids and linger are the host's",
        "podman_secret db-password": "a secret or credential never goes into an image",
        "quadlet mine (user=core)": (
            "Quadlet reads a user's units from /etc/containers/systemd/users/UID, and the UID is the host's: give it in "
            "user_ids to carry the unit in the image"
        ),
    }
    # the secret's value is nowhere in the context
    assert not [name for name, text in on_disk(tmp_path).items() if "s3cret" in text]


def test_a_users_units_go_where_quadlet_finds_them_for_that_uid(tmp_path, capsys):
    result = run(tmp_path, capsys, user_ids={"core": 1000})
    files = on_disk(tmp_path)
    unit = files["tree/etc/containers/systemd/users/1000/mine.container"]
    assert "Image=quay.io/example/mine:1" in unit
    assert "additionalimagestore" not in unit  # a bound image is bootc's (root's) store, not the user's
    assert "bound-images.d/mine.container" not in result["containerfile"]
    assert "quadlet mine (user=core)" not in [entry["resource"] for entry in result["runtime"]]
    assert "rootless_user core" in [entry["resource"] for entry in result["runtime"]]  # the user itself is the host's


@pytest.mark.parametrize("uid", [0, -5, "1000; reboot", True, "abc"])
def test_user_ids_are_uids(tmp_path, capsys, uid):
    result = run(tmp_path, capsys, user_ids={"core": uid})
    assert result["failed"] is True and "user_ids maps user names to their UIDs" in result["msg"]
    assert not (tmp_path / CONTEXT.lstrip("/")).exists()


TRUST = [
    {"type": "reject"},
    {"scope": "", "type": "insecureAcceptAnything"},
    {"scope": "quay.io/fedora", "key": COSIGN_PUB},
    {"scope": "registry.example.test/fleet", "key": COSIGN_PUB, "key_path": "/etc/pki/containers/fleet.pub"},
    {"scope": "registry.example.test/other", "key_path": "/etc/pki/containers/other.pub"},
]


def test_the_trust_is_the_documents_over_the_default_policy(tmp_path, capsys):
    result = run(tmp_path, capsys, os={"rebase": {"image": BASE}, "trust": TRUST})
    files = on_disk(tmp_path)
    policy = json.loads(files["tree/etc/containers/policy.json"])
    sigstore = {"type": "sigstoreSigned", "signedIdentity": {"type": "matchRepository"}}
    assert policy == {
        "default": [{"type": "reject"}],
        "transports": {
            "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},  # containers-common's, kept
            "docker": {
                "": [{"type": "insecureAcceptAnything"}],
                "quay.io/fedora": [dict(sigstore, keyPath="/etc/pki/containers/quay.io-fedora.pub")],
                "registry.example.test/fleet": [dict(sigstore, keyPath="/etc/pki/containers/fleet.pub")],
            },
        },
    }
    assert files["tree/etc/pki/containers/quay.io-fedora.pub"] == COSIGN_PUB
    assert files["tree/etc/pki/containers/fleet.pub"] == COSIGN_PUB
    assert "use-sigstore-attachments: true" in files["tree/etc/containers/registries.d/quay.io-fedora.yaml"]
    runtime = {entry["resource"]: entry["reason"] for entry in result["runtime"]}
    assert runtime["image_policy registry.example.test/other"].startswith("the key is a file on the host (key_path)")
    assert not [name for name in files if "other" in name]
    again = run(tmp_path, capsys, os={"rebase": {"image": BASE}, "trust": TRUST})
    assert again["changed"] is False


def test_a_trust_entry_the_policy_refuses_fails_before_anything_is_written(tmp_path, capsys):
    result = run(tmp_path, capsys, os={"rebase": {"image": BASE}, "trust": [{"scope": "quay.io/fedora", "key": "nope"}]})
    assert result["failed"] is True and "is not a PEM public key" in result["msg"]
    assert not (tmp_path / CONTEXT.lstrip("/")).exists()


def run_with_window(tmp_path, capsys, update_policy: dict, backend: str | None = None, calendar_rc: int = 0) -> dict:
    answers = {"systemd-analyze calendar -- Sat 02:00": (calendar_rc, "", "" if calendar_rc == 0 else "Failed to parse")}
    tools = Tools(answers, present=("systemd-analyze",))
    rebase = {"image": BASE, **({"backend": backend} if backend else {})}
    args = {"os": {"rebase": rebase, "update_policy": update_policy}, "path": CONTEXT}
    return run_unit(
        context.UNIT,
        {**args, "_ansible_check_mode": False, "_ansible_diff": True},
        Host(runner=tools.runner(), root=str(tmp_path), machine="x86_64"),
        capsys,
    )


def test_the_update_policy_is_rpm_ostreeds_and_the_timers(tmp_path, capsys):
    wanted = {"policy": "stage", "timer_enabled": True, "window": "Sat 02:00", "on_ac_power": True, "skip_metered": True}
    result = run_with_window(tmp_path, capsys, wanted)
    files = on_disk(tmp_path)
    conf = files["tree/etc/rpm-ostreed.conf"].splitlines()
    assert conf[1:] == ["[Daemon]", "AutomaticUpdatePolicy=stage"]
    window = files["tree/etc/systemd/system/rpm-ostreed-automatic.timer.d/50-immutable-hosts.conf"]
    assert window.splitlines()[-1] == "OnCalendar=Sat 02:00"
    service = files["tree/etc/systemd/system/rpm-ostreed-automatic.service.d/50-immutable-hosts.conf"]
    assert "ConditionACPower=true" in service and "ExecCondition" not in service
    assert 'RUN ["systemctl", "enable", "rpm-ostreed-automatic.timer"]' in result["containerfile"].splitlines()
    assert [entry["resource"] for entry in result["runtime"]] == ["update_policy (skip_metered)"]
    assert "/usr/local" in result["runtime"][0]["reason"]
    assert not [name for name in files if "update-gate" in name]


def test_a_setting_is_written_even_where_it_is_rpm_ostrees_default(tmp_path, capsys):
    result = run_with_window(tmp_path, capsys, {"policy": "none", "lock_layering": False, "timer_enabled": False})
    assert on_disk(tmp_path)["tree/etc/rpm-ostreed.conf"].splitlines()[1:] == [
        "[Daemon]",
        "AutomaticUpdatePolicy=none",
        "LockLayering=false",
    ]
    assert 'RUN ["systemctl", "disable", "rpm-ostreed-automatic.timer"]' in result["containerfile"].splitlines()


def test_a_bootc_image_disables_bootcs_timer_and_has_no_daemon_settings(tmp_path, capsys):
    result = run_with_window(tmp_path, capsys, {"timer_enabled": False}, backend="bootc")
    assert 'RUN ["systemctl", "disable", "bootc-fetch-apply-updates.timer"]' in result["containerfile"].splitlines()
    assert "tree/etc/rpm-ostreed.conf" not in on_disk(tmp_path)
    refused = run_with_window(tmp_path / "other", capsys, {"policy": "stage"}, backend="bootc")
    assert refused["failed"] is True and "give timer_enabled only" in refused["msg"]


def test_a_window_systemd_refuses_fails_before_anything_is_written(tmp_path, capsys):
    result = run_with_window(tmp_path, capsys, {"window": "Sat 02:00"}, calendar_rc=1)
    assert result["failed"] is True and "is not a systemd calendar expression" in result["msg"]
    assert not (tmp_path / CONTEXT.lstrip("/")).exists()


def test_preinstall_files_where_flatpak_has_them(tmp_path, capsys):
    result = run(tmp_path, capsys, flatpak_preinstall=True)
    files = on_disk(tmp_path)
    assert files["tree/usr/share/flatpak/preinstall.d/org.example.Editor.preinstall"].splitlines()[1:] == [
        "[Flatpak Preinstall org.example.Editor]"
    ]
    assert files["tree/usr/share/flatpak/preinstall.d/org.example.Viewer.preinstall"].splitlines()[1:] == [
        "[Flatpak Preinstall org.example.Viewer]",
        "Branch=beta",
    ]
    assert "systemctl" not in result["containerfile"]
    assert not [name for name in files if "flatpak-install" in name]


def test_the_same_document_gives_the_same_context_and_a_second_run_changes_nothing(tmp_path, capsys):
    first = run(tmp_path, capsys)
    again = run(tmp_path, capsys)
    assert again["changed"] is False
    assert again["context_digest"] == first["context_digest"]
    assert again["diff"] == []
    elsewhere = run(tmp_path / "other", capsys)
    assert elsewhere["context_digest"] == first["context_digest"]
    assert on_disk(tmp_path / "other") == on_disk(tmp_path)


def test_check_mode_shows_every_file_and_writes_none(tmp_path, capsys):
    result = run(tmp_path, capsys, check=True)
    assert result["changed"] is True
    assert sorted(d["after_header"] for d in result["diff"]) == sorted("%s/%s" % (CONTEXT, name) for name in result["files"])
    assert not (tmp_path / CONTEXT.lstrip("/")).exists()


def test_a_changed_document_rewrites_and_removes_only_what_changed(tmp_path, capsys):
    run(tmp_path, capsys)
    top = tmp_path / CONTEXT.lstrip("/")
    (top / "tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml").write_text("kargs = []\n")  # edited by hand
    result = run(tmp_path, capsys, check=True, quadlets=[])
    headers = {d["after_header"]: d for d in result["diff"]}
    assert "/dev/null" in headers and headers["/dev/null"]["before_header"].endswith("web.container")
    assert headers[CONTEXT + "/tree/usr/lib/bootc/kargs.d/50-immutable-hosts.toml"]["before"] == "kargs = []\n"
    assert (top / "tree/usr/share/containers/systemd/web.container").exists()  # a check removed nothing
    run(tmp_path, capsys, quadlets=[])
    assert not (top / "tree/usr/share/containers").exists()  # the emptied directories go too
    assert run(tmp_path, capsys, quadlets=[])["changed"] is False


def test_a_directory_that_is_not_a_context_is_refused(tmp_path, capsys):
    top = tmp_path / CONTEXT.lstrip("/")
    top.mkdir(parents=True)
    (top / "notes.txt").write_text("mine\n")
    result = run(tmp_path, capsys)
    assert result["failed"] is True
    assert "is not a build context this module wrote" in result["msg"]
    assert sorted(p.name for p in top.iterdir()) == ["notes.txt"]


def test_a_link_in_the_context_is_refused(tmp_path, capsys):
    run(tmp_path, capsys)
    top = tmp_path / CONTEXT.lstrip("/")
    os.symlink("/etc/shadow", top / "tree/shadow")
    result = run(tmp_path, capsys)
    assert result["failed"] is True and "tree/shadow in the build context is not a regular file" in result["msg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"base_image": "quay.io/fedora/fedora-silverblue:42"}, "is not pinned by digest"),
        ({"os": {"rebase": {"ref": "fedora:fedora/42/x86_64/silverblue"}}}, "an image is built FROM a container image"),
        ({"os": {"packages": {"name": ["htop"]}}}, "the document names no image to build from"),
        ({"path": "relative/dir"}, "path is an absolute directory"),
        ({"os": {"rebase": {"image": BASE}, "packages": {"name": ["htop;reboot"]}}}, "is not a package name"),
        ({"os": {"rebase": {"image": BASE}, "kargs": [{"args": ["a=b\nc"]}]}}, "contains U+000A"),
    ],
)
def test_bad_input_fails_before_anything_is_written(tmp_path, capsys, args, message):
    result = run(tmp_path, capsys, **args)
    assert result["failed"] is True
    assert message in result["msg"]
    assert not (tmp_path / CONTEXT.lstrip("/")).exists()


def test_tmpfiles_lines_give_back_the_override_byte_for_byte(tmp_path, capsys):
    run(tmp_path, capsys)
    line = on_disk(tmp_path)["tree/usr/lib/tmpfiles.d/immutable-hosts-flatpak-overrides.conf"].splitlines()[1]
    assert line.startswith("f+ /var/lib/flatpak/overrides/org.example.Editor 0644 root root - ")
    tool = shutil.which("systemd-tmpfiles")
    if tool is None:
        pytest.skip("systemd-tmpfiles is not installed")
    root = tmp_path / "booted"
    (root / "var/lib/flatpak/overrides").mkdir(parents=True)
    conf = tmp_path / "overrides.conf"
    conf.write_text(line + "\n")
    subprocess.run([tool, "--root=%s" % root, "--create", str(conf)], check=True, capture_output=True)
    assert (root / "var/lib/flatpak/overrides/org.example.Editor").read_text() == OVERRIDE


def test_toml_and_tmpfiles_escapes():
    assert context.toml_string('a"b\\c\x01') == '"a\\"b\\\\c\\u0001"'
    assert context.tmpfiles_argument("a b\t%\\\n") == "a\\x20b\\t%%\\\\\\n"


# --- a group of hosts: what they share is the image ---------------------------------------------------------------


def host_document(packages: list, apps: list, kargs: list, extra_quadlet: bool = False) -> dict:
    doc = {
        "os": {
            "rebase": {"image": BASE},
            "packages": {"name": packages, "state": "present", "override_remove": ["firefox"]},
            "kargs": [{"args": kargs, "state": "present"}],
        },
        "flatpak": [
            {
                "scope": "system",
                "remotes": [{"name": "lab", "url": "https://f.example.test/"}],
                "apps": [{"name": apps, "remote": "lab"}],
            }
        ],
        "quadlets": [{"name": "web", "container": {"image": "quay.io/example/web:1"}}],
        "secrets": [],
    }
    if extra_quadlet:
        doc["quadlets"].append({"name": "lab-only", "container": {"image": "quay.io/example/lab:1"}})
    return doc


def test_a_group_image_holds_what_every_host_has_and_the_rest_stays_with_each_host():
    split = context.split_group(
        {
            "sb-2": host_document(["htop", "zsh", "tmux"], ["org.example.Editor", "org.example.Viewer"], ["quiet"], True),
            "sb-1": host_document(["htop", "tmux"], ["org.example.Editor"], ["quiet"]),
        }
    )
    image = split["document"]
    assert image["os"]["rebase"]["image"] == BASE
    assert image["os"]["packages"]["name"] == ["htop", "tmux"]
    assert image["os"]["packages"]["override_remove"] == ["firefox"]
    assert [(item["args"], item["state"]) for item in image["os"]["kargs"]] == [(["quiet"], "present")]
    assert [(item["name"], item["remote"]) for item in image["flatpak"][0]["apps"]] == [(["org.example.Editor"], "lab")]
    assert [unit["name"] for unit in image["quadlets"]] == ["web"]
    assert split["per_host"] == {
        "sb-1": [],
        "sb-2": ["rpm_ostree_packages", "flatpak", "quadlet lab-only"],
    }


def test_a_group_on_different_bases_is_refused():
    other = host_document(["htop"], [], ["quiet"])
    other["os"]["rebase"] = {"image": "quay.io/fedora/fedora-kinoite@" + DIGEST}
    with pytest.raises(context.ContextError, match="follow different base images"):
        context.split_group({"a": host_document(["htop"], [], ["quiet"]), "b": other})


def test_one_host_is_its_own_image(tmp_path, capsys):
    doc = host_document(["htop"], ["org.example.Editor"], ["quiet"])
    split = context.split_group({"only": doc})
    assert split["per_host"] == {"only": []}
    assert split["document"]["os"]["packages"]["name"] == ["htop"]
