"""`immutable-hosts adopt`: observed module results to role variables, and the host_vars round trip with ruamel.yaml
(comments, key order, list style and other keys kept)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from immutable_hosts import adopt

# The collection laid out by `make tree` (make cli depends on it): adopt is tested against what ostree_facts returns.
BUILD = Path(__file__).resolve().parents[2] / "build"
sys.path.insert(0, str(BUILD))
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _bootc as bootc  # noqa: E402
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _facts as facts  # noqa: E402
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _imageref as imageref  # noqa: E402
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _status as rpm_ostree  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "fixtures"


def load(text: str):
    """host_vars as Ansible reads them: !unsafe strings are plain strings that are never templated."""
    yaml = YAML(typ="safe")
    yaml.constructor.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    return yaml.load(text)


def facts_of_rpm_ostree(fixture: str, origin: str | None = None) -> dict:
    """ansible_facts.ostree as the module computes it (facts.from_rpm_ostree on the parsed document)."""
    document = json.loads((FIXTURES / fixture).read_text())
    if origin is not None:
        for entry in document["deployments"]:
            entry.pop("origin", None)
            entry["container-image-reference"] = origin
    status = rpm_ostree.parse_status(document)
    return facts.from_rpm_ostree(status, {}, {"policy": "none"}, "x86_64")


def observed(ostree_facts: dict) -> dict:
    return {
        "ostree": {"changed": False, "ansible_facts": {"ostree": ostree_facts}},
        "flatpak": {"failed": True, "msg": "flatpak is not installed on this host"},
        "overrides": {"skipped": True, "results": []},
    }


# Results as the observation playbook hands them over (shapes of ostree_facts, flatpak and flatpak_override).
RAW = {
    "ostree": {
        "changed": False,
        "ansible_facts": {
            "ostree": {
                "is_ostree": True,
                "backend": "rpm-ostree",
                "deployments": [
                    {
                        "index": 0,
                        "origin": "fedora:fedora/41/x86_64/silverblue",
                        "origin_parsed": {"kind": "refspec", "remote": "fedora", "ref": "fedora/41/x86_64/silverblue"},
                        "requested_packages": ["tmux", "htop"],
                    },
                    {"index": 1, "origin_parsed": {"kind": "refspec", "remote": "fedora", "ref": "fedora/40/x86_64/silverblue"}},
                ],
                "kargs": ["root=UUID=6f3b", "rw", "ostree=/ostree/boot.1/fedora/abc/0", "quiet", "mitigations=auto"],
            }
        },
    },
    "flatpak": {
        "changed": False,
        "diff": {
            "before": {
                "refs": {
                    "app/org.example.Editor/x86_64/stable": "flathub",
                    "app/org.example.Chat/x86_64/stable": "lab",
                    "runtime/org.example.Platform/x86_64/24.08": "flathub",
                }
            },
            "after": {"refs": {}},
        },
    },
    "overrides": {
        "changed": False,
        "results": [
            {
                "item": "global",
                "changed": True,
                "diff": {"before": {"environment": {"GTK_THEME": "Adwaita:dark"}}, "after": {}},
            },
            {
                "item": "org.example.Editor",
                "changed": True,
                "diff": {
                    "before": {
                        "filesystems": ["!home", "xdg-download:ro"],
                        "sockets": ["!x11", "wayland"],
                        "session_bus": {"org.freedesktop.Flatpak": "talk", "org.example.Own": "own", "org.x.Y": "see"},
                        "persistent": [".editor"],
                    },
                    "after": {},
                },
            },
        ],
    },
}

HOST_VARS = """\
---
# silverblue-1: the design team's workstation
owner: design  # who to call

# the image it follows
os_image_image: quay.io/fedora/fedora-silverblue:41
os_image_packages:
- htop  # always
- vim-enhanced
# kernel arguments below
os_image_kargs: [quiet]
flatpak_apps:
- name: org.example.Editor
  remote: flathub
location: "room 4"
"""


def test_observed_variables():
    values, remove, notes = adopt.observed_variables(RAW)
    assert values == {
        "os_image_ref": "fedora:fedora/41/x86_64/silverblue",
        "os_image_packages": ["htop", "tmux"],
        "os_image_kargs": ["root=UUID=6f3b", "rw", "quiet", "mitigations=auto"],
        "flatpak_apps": [{"name": "org.example.Chat", "remote": "lab"}, {"name": "org.example.Editor", "remote": "flathub"}],
        "flatpak_overrides": [
            {"global": True, "environment": {"GTK_THEME": "Adwaita:dark"}},
            {
                "app": "org.example.Editor",
                "filesystems": ["xdg-download:ro"],
                "nofilesystems": ["home"],
                "sockets": ["wayland"],
                "nosockets": ["x11"],
                "talk_names": ["org.freedesktop.Flatpak"],
                "own_names": ["org.example.Own"],
                "persist": [".editor"],
            },
        ],
    }
    assert set(remove) == {"os_image_image", "os_image_signature", "os_image_transport", "os_image_signature_remote"}
    assert notes == ["override org.example.Editor: session_bus org.x.Y=see kept on the host only (no option for them)"]


@pytest.mark.parametrize(
    ("origin", "expected", "removed"),
    [
        # Before: adopt read "signature"/"name" keys that ostree_facts never returns, so these hosts were adopted as
        # signed (a rebase to the signed image on the next run) and the oci: host as os_image_image: "".
        (
            "ostree-unverified-registry:quay.io/fedora/fedora-silverblue:42",
            {"os_image_image": "quay.io/fedora/fedora-silverblue:42", "os_image_signature": "unverified"},
            {"os_image_ref", "os_image_transport", "os_image_signature_remote"},
        ),
        (
            "ostree-remote-image:fedora:docker://quay.io/fedora/fedora-coreos:stable",
            {
                "os_image_image": "quay.io/fedora/fedora-coreos:stable",
                "os_image_signature": "remote",
                "os_image_signature_remote": "fedora",
            },
            {"os_image_ref", "os_image_transport"},
        ),
        (
            "ostree-unverified-image:oci:/var/lib/images/silverblue",
            {"os_image_image": "/var/lib/images/silverblue", "os_image_signature": "unverified", "os_image_transport": "oci"},
            {"os_image_ref", "os_image_signature_remote"},
        ),
        (
            "ostree-image-signed:docker://quay.io/fedora/fedora-silverblue:42",
            {"os_image_image": "quay.io/fedora/fedora-silverblue:42"},
            {"os_image_ref", "os_image_signature", "os_image_transport", "os_image_signature_remote"},
        ),
    ],
)
def test_image_hosts_are_adopted_from_what_ostree_facts_returns(origin, expected, removed):
    values, remove, _notes = adopt.observed_variables(
        observed(facts_of_rpm_ostree("rpm-ostree-status-container-origin.json", origin))
    )
    assert {
        key: values[key] for key in values if key.startswith("os_image_") and key not in ("os_image_packages", "os_image_kargs")
    } == expected
    assert set(remove) == removed
    # What adopt records, the rebase module reads back as the same reference: no rebase on the next run.
    wanted = imageref.image_from_options(
        values["os_image_image"],
        transport=values.get("os_image_transport", "registry"),
        signature=values.get("os_image_signature", "signed"),
        remote=values.get("os_image_signature_remote"),
    )
    assert imageref.same_origin(wanted, imageref.parse_origin(origin))


def test_a_bootc_host_is_adopted_from_what_ostree_facts_returns():
    status = bootc.parse_status((FIXTURES / "bootc-status-container-host.json").read_text())
    host_facts = facts.from_bootc(status, {}, {"timer_enabled": False}, "x86_64")
    values, _remove, _notes = adopt.observed_variables(observed(host_facts))
    assert values["os_image_image"] == status["booted"]["image"]["image"]["image"]
    assert "os_image_signature" not in values  # containerPolicy: signed, the default


def test_unreadable_parts_are_notes():
    host_facts = facts_of_rpm_ostree("rpm-ostree-status-plain-silverblue.json")
    host_facts["kargs"] = None
    values, _remove, notes = adopt.observed_variables(observed(host_facts))
    assert values["os_image_ref"].startswith("fedora:fedora/")
    assert notes == [
        "kernel arguments unreadable (run as root or with become): not adopted",
        "Flatpak apps not adopted: flatpak is not installed on this host",
    ]
    values, _remove, notes = adopt.observed_variables({"ostree": {"ansible_facts": {"ostree": {"is_ostree": False}}}})
    assert "os_image_packages" not in values and notes[0].startswith("OS image, packages and kernel arguments not adopted")


def test_round_trip_keeps_comments_order_style_and_other_keys():
    values, remove, _notes = adopt.observed_variables(RAW)
    text = adopt.update_document(HOST_VARS, "silverblue-1", values, remove)
    assert text.startswith("---\n# silverblue-1: the design team's workstation\nowner: design  # who to call\n")
    assert "\n# the image it follows\n" in text
    assert "os_image_image" not in text
    assert "- !unsafe htop # always\n- !unsafe tmux\n# kernel arguments below\n" in text  # item comment and the one after
    assert 'location: "room 4"\n' in text  # quoting kept
    data = load(text)
    assert list(data) == [
        "owner",
        "os_image_packages",
        "os_image_kargs",
        "flatpak_apps",
        "location",
        "os_image_ref",
        "flatpak_overrides",
    ]
    assert data["os_image_packages"] == ["htop", "tmux"]
    assert data["flatpak_apps"] == values["flatpak_apps"]
    # a second adopt of the same state changes nothing
    assert adopt.update_document(text, "silverblue-1", values, remove) == text


def test_indented_lists_stay_indented_and_a_new_file_gets_a_header():
    text = "os_image_packages:\n  - htop  # keep\n  - zsh\nflatpak_apps: []\n"
    updated = adopt.update_document(
        text, "h", {"os_image_packages": ["htop"], "flatpak_apps": [{"name": "a.b.C", "remote": "r"}]}, []
    )
    assert (
        updated == "os_image_packages:\n  - !unsafe htop # keep\nflatpak_apps:\n  - name: !unsafe a.b.C\n    remote: !unsafe r\n"
    )
    fresh = adopt.update_document("", "h", {"os_image_packages": ["htop"]}, ["os_image_image"])
    assert fresh == adopt.HOST_VARS_HEADER.format(host="h") + "os_image_packages:\n  - !unsafe htop\n"  # yamllint's default
    only_comments = adopt.update_document("# nothing yet\n", "h", {"os_image_kargs": ["quiet"]}, [])
    assert only_comments == "# nothing yet\nos_image_kargs:\n  - !unsafe quiet\n"
    with pytest.raises(adopt.AdoptError, match="not a YAML mapping"):
        adopt.update_document("- a\n", "h", {}, [])


def test_host_vars_path(tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {}\n")
    assert adopt.host_vars_path(str(inventory), "h1") == tmp_path / "host_vars" / "h1.yml"
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "h1.yaml").write_text("{}\n")
    assert adopt.host_vars_path(str(inventory), "h1") == tmp_path / "host_vars" / "h1.yaml"
    assert adopt.host_vars_path(str(tmp_path), "h2") == tmp_path / "host_vars" / "h2.yml"


def args(tmp_path, yes):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all: {hosts: {silverblue-1: {}}}\n")
    return argparse.Namespace(inventory=str(inventory), host="silverblue-1", yes=yes, host_vars=None)


def test_command_shows_the_diff_asks_and_writes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: RAW)
    path = tmp_path / "host_vars" / "silverblue-1.yml"
    path.parent.mkdir()
    path.write_text(HOST_VARS)

    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    assert adopt.run(args(tmp_path, yes=False)) == 1
    out = capsys.readouterr()
    assert "-os_image_image: quay.io/fedora/fedora-silverblue:41" in out.out and "+- !unsafe tmux" in out.out
    assert "not written" in out.err
    assert path.read_text() == HOST_VARS

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert adopt.run(args(tmp_path, yes=False)) == 0
    assert "os_image_ref: !unsafe fedora:fedora/41/x86_64/silverblue" in path.read_text()

    written = path.read_text()
    assert adopt.run(args(tmp_path, yes=True)) == 0
    assert "nothing to write" in capsys.readouterr().err
    assert path.read_text() == written


def test_command_writes_a_new_file_with_yes(tmp_path, monkeypatch):
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: RAW)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert adopt.run(args(tmp_path, yes=True)) == 0
    data = load((tmp_path / "host_vars" / "silverblue-1.yml").read_text())
    assert data["os_image_ref"] == "fedora:fedora/41/x86_64/silverblue"


def test_command_reports_an_unreadable_host(tmp_path, monkeypatch, capsys):
    def fail(inventory, host):
        raise adopt.AdoptError("could not read silverblue-1 (ansible-playbook exited 4)")

    monkeypatch.setattr(adopt, "observe", fail)
    assert adopt.run(args(tmp_path, yes=True)) == 1
    assert "could not read silverblue-1" in capsys.readouterr().err


# --- host data is data: the security audit's findings ---------------------------------------------------------------

HOSTILE_VALUE = "{{ lookup('pipe', 'touch %s') }}"


def hostile_raw(marker: Path) -> dict:
    raw = json.loads(json.dumps(RAW))
    raw["overrides"]["results"][0]["diff"]["before"]["environment"] = {
        "GTK_THEME": HOSTILE_VALUE % marker,
        "{{ lookup('pipe', 'touch %s') }}" % marker: "x",
    }
    return raw


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_a_value_from_the_host_is_never_evaluated_on_the_controller(tmp_path, monkeypatch):
    """Before: an override value {{ lookup('pipe', ...) }} went into host_vars as is, and the next play ran it."""
    marker = tmp_path / "pwned"
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: hostile_raw(marker))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    silverblue-1:\n      ansible_connection: local\n")
    assert adopt.run(argparse.Namespace(inventory=str(inventory), host="silverblue-1", yes=True, host_vars=None)) == 0
    written = (tmp_path / "host_vars" / "silverblue-1.yml").read_text()
    assert "GTK_THEME: !unsafe \"{{ lookup('pipe'" in written or "GTK_THEME: !unsafe '{{ lookup(''pipe''" in written
    assert "lookup('pipe', 'touch %s') }}\": x" % marker not in written  # the Jinja key was not adopted
    playbook = tmp_path / "show.yml"
    playbook.write_text(
        "- hosts: silverblue-1\n  gather_facts: false\n  tasks:\n"
        '    - ansible.builtin.debug:\n        msg: "{{ flatpak_overrides[0].environment.GTK_THEME }}"\n'
    )
    tool = Path(sys.executable).parent / "ansible-playbook"
    done = subprocess.run(
        [str(tool), "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lookup('pipe', 'touch" in done.stdout and not marker.exists()


def test_the_file_keeps_its_mode_and_is_written_whole(tmp_path, monkeypatch):
    """Before: a 0600 host_vars file (ansible_become_password) became 0644, through a fixed temporary name."""
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: RAW)
    path = tmp_path / "host_vars" / "silverblue-1.yml"
    path.parent.mkdir()
    path.write_text("ansible_become_password: hunter2\n")
    path.chmod(0o600)
    assert adopt.run(args(tmp_path, yes=True)) == 0
    assert path.stat().st_mode & 0o777 == 0o600 and "hunter2" in path.read_text()
    assert sorted(p.name for p in path.parent.iterdir()) == ["silverblue-1.yml"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("---\na: 1\n---\nb: 2\n", "not one readable YAML document"),
        ("a: [1, 2\n", "not one readable YAML document"),
        ("a: 1\n\tb: 2\n", "not one readable YAML document"),
        ("- just\n- a list\n", "not a YAML mapping"),
    ],
)
def test_an_unreadable_host_vars_file_is_a_message_and_stays_as_it_is(tmp_path, monkeypatch, capsys, content, message):
    """Before: a multi-document or invalid file crashed adopt with a traceback."""
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: RAW)
    path = tmp_path / "host_vars" / "silverblue-1.yml"
    path.parent.mkdir()
    path.write_text(content)
    assert adopt.run(args(tmp_path, yes=True)) == 1
    err = capsys.readouterr().err
    assert f"{path}: the host_vars file" in err and message in err and "Traceback" not in err
    assert path.read_text() == content
    with pytest.raises(adopt.AdoptError, match=message):
        adopt.update_document(content, "silverblue-1", {"os_image_kargs": ["quiet"]}, [])


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("../../x,web1", "is not a host name"),
        ("silverblue-1,evil", "is not a host name"),
        ("web*", "is not a host name"),
        ("!silverblue-1", "is not a host name"),
        ("..", "is not a host name"),
        ("silverblue", "is a group of"),
        ("nowhere-1", "is not a host of"),
    ],
)
def test_only_one_host_of_the_inventory_is_adopted_and_nothing_is_written_elsewhere(tmp_path, monkeypatch, capsys, host, message):
    """Before: '../../x,web1' wrote outside host_vars/, and a group name was adopted as if it were a host."""
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: pytest.fail("observed a host that is not one"))
    inventory = tmp_path / "inv" / "inventory.yml"
    inventory.parent.mkdir()
    inventory.write_text("all:\n  children:\n    silverblue:\n      hosts:\n        silverblue-1: {}\n")
    before = tree(tmp_path)
    assert adopt.run(argparse.Namespace(inventory=str(inventory), host=host, yes=True, host_vars=None)) == 1
    assert message in capsys.readouterr().err and tree(tmp_path) == before
