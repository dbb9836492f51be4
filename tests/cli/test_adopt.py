"""`immutable-hosts adopt`: observed module results to role variables, and the host_vars round trip with ruamel.yaml
(comments, key order, list style and other keys kept)."""

from __future__ import annotations

import argparse

import pytest
from ruamel.yaml import YAML

from immutable_hosts import adopt

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
    assert set(remove) == {"os_image_image", "os_image_signature", "os_image_transport"}
    assert notes == ["override org.example.Editor: session_bus org.x.Y=see kept on the host only (no option for them)"]


def test_an_image_host_and_unreadable_parts():
    raw = {
        "ostree": {
            "ansible_facts": {
                "ostree": {
                    "is_ostree": True,
                    "deployments": [
                        {
                            "origin_parsed": {
                                "kind": "container",
                                "signature": "unverified",
                                "transport": "registry",
                                "name": "quay.io/fedora/fedora-silverblue:42",
                            },
                            "requested_packages": [],
                        }
                    ],
                    "kargs": None,
                }
            }
        },
        "flatpak": {"failed": True, "msg": "flatpak is not installed on this host"},
        "overrides": {"skipped": True, "results": []},
    }
    values, remove, notes = adopt.observed_variables(raw)
    assert values == {
        "os_image_image": "quay.io/fedora/fedora-silverblue:42",
        "os_image_signature": "unverified",
        "os_image_packages": [],
        "flatpak_overrides": [],
    }
    assert set(remove) == {"os_image_ref", "os_image_transport"}
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
    assert "- htop  # always\n- tmux\n# kernel arguments below\n" in text  # item comment and the comment after the list
    assert 'location: "room 4"\n' in text  # quoting kept
    data = YAML(typ="safe").load(text)
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
    assert updated == "os_image_packages:\n  - htop  # keep\nflatpak_apps:\n  - name: a.b.C\n    remote: r\n"
    fresh = adopt.update_document("", "h", {"os_image_packages": ["htop"]}, ["os_image_image"])
    assert fresh == adopt.HOST_VARS_HEADER.format(host="h") + "os_image_packages:\n  - htop\n"  # yamllint's default
    only_comments = adopt.update_document("# nothing yet\n", "h", {"os_image_kargs": ["quiet"]}, [])
    assert only_comments == "# nothing yet\nos_image_kargs:\n  - quiet\n"
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
    assert "-os_image_image: quay.io/fedora/fedora-silverblue:41" in out.out and "+- tmux" in out.out
    assert "not written" in out.err
    assert path.read_text() == HOST_VARS

    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert adopt.run(args(tmp_path, yes=False)) == 0
    assert "os_image_ref: fedora:fedora/41/x86_64/silverblue" in path.read_text()

    written = path.read_text()
    assert adopt.run(args(tmp_path, yes=True)) == 0
    assert "nothing to write" in capsys.readouterr().err
    assert path.read_text() == written


def test_command_writes_a_new_file_with_yes(tmp_path, monkeypatch):
    monkeypatch.setattr(adopt, "observe", lambda inventory, host: RAW)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert adopt.run(args(tmp_path, yes=True)) == 0
    data = YAML(typ="safe").load((tmp_path / "host_vars" / "silverblue-1.yml").read_text())
    assert data["os_image_ref"] == "fedora:fedora/41/x86_64/silverblue"


def test_command_reports_an_unreadable_host(tmp_path, monkeypatch, capsys):
    def fail(inventory, host):
        raise adopt.AdoptError("could not read silverblue-1 (ansible-playbook exited 4)")

    monkeypatch.setattr(adopt, "observe", fail)
    assert adopt.run(args(tmp_path, yes=True)) == 1
    assert "could not read silverblue-1" in capsys.readouterr().err
