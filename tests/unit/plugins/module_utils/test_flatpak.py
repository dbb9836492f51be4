"""Parsers and planners of module_utils.flatpak, driven by real output of flatpak 1.14.10 and 1.16.6."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _apps as apps
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _installation as installation
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _names as names
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _openpgp as openpgp
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _overrides as overrides
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _remotes as remote_units

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "flatpak"
VERSIONS = ["1.14.10", "1.16.6"]


def text(version: str, name: str) -> str:
    return (FIXTURES / version / name).read_text()


def want(spec: str, arch: str = "x86_64") -> dict:
    return apps.parse_ref(spec, arch)


@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_versions(version):
    assert text(version, "version.txt").strip() == "Flatpak " + version


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_list_system(version):
    refs = apps.parse_list(text(version, "list-system.txt"))
    assert [r["ref"] for r in refs] == [
        "app/org.test.Hello/x86_64/beta",
        "app/org.test.Hello/x86_64/stable",
        "app/org.test.Other-App/x86_64/stable",
        "runtime/org.test.Platform/x86_64/1",
    ]
    hello = refs[1]
    assert hello["kind"] == "app" and hello["id"] == "org.test.Hello" and hello["branch"] == "stable"
    assert hello["origin"] == "testrepo" and hello["current"] is True and len(hello["commit"]) == 12
    assert hello["runtime"] == "runtime/org.test.Platform/x86_64/1" and hello["installation"] == "system"
    assert refs[0]["current"] is False and refs[2]["origin"] == "insecure"
    assert refs[3]["kind"] == "runtime" and refs[3]["runtime"] is None


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_list_all_installations_and_empty(version):
    refs = apps.parse_list(text(version, "list-all.txt"))
    assert [r["installation"] for r in refs].count("user") == 1 and len(refs) == 5
    assert refs[4]["kind"] == "runtime"
    assert apps.parse_list(text(version, "list-extra-empty.txt")) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_remotes_fedora_like_flathub(version):
    remotes = remote_units.parse_remotes(text(version, "remotes-system.txt"))
    assert sorted(remotes) == ["flathub", "insecure", "testrepo"]
    assert remotes["flathub"] == {
        "name": "flathub",
        "url": "file:///tmp/flatpak-capture/repo",
        "title": "Flathub",
        "comment": "Central repository of Flatpak applications",
        "priority": 1,
        "filter": "/tmp/flatpak-capture/filter",
        "collection_id": None,
        "enabled": False,
        "gpg_verify": True,
    }
    assert remotes["insecure"]["gpg_verify"] is False and remotes["insecure"]["priority"] == 5
    assert remotes["insecure"]["title"] == "Insecure Mirror"
    assert remotes["testrepo"]["title"] is None and remotes["testrepo"]["enabled"] is True
    reconciled = remote_units.parse_remotes(text(version, "remotes-system-reconciled.txt"))["flathub"]
    assert reconciled["filter"] is None and reconciled["enabled"] is True


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_remotes_of_all_installations_keeps_last(version):
    remotes = remote_units.parse_remotes(text(version, "remotes-all.txt"))
    assert remotes["testrepo"]["gpg_verify"] is False  # the user's, listed after the system's


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_updates(version):
    assert apps.parse_updates(text(version, "remote-ls-updates.txt")) == ["app/org.test.Hello/x86_64/stable"]
    assert apps.parse_updates(text(version, "remote-ls-updates-none.txt")) == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", ["override-show.txt", "override-file.keyfile"])
def test_parse_override_and_render_round_trip(version, name):
    data = overrides.parse_override(text(version, name))
    assert data["context"]["filesystems"] == {"home": "home:ro", "xdg-download": "xdg-download:create", "host": "!host"}
    assert data["context"]["sockets"] == {"x11": "!x11", "wayland": "wayland"}
    assert data["context"]["features"] == {"devel": "devel", "bluetooth": "!bluetooth"}
    assert data["environment"] == {"FOO": "bar"} and data["unset_environment"] == ["BAZ"]
    assert data["session_bus"] == {"org.a.B": "talk", "org.c.D": "own"}
    assert data["system_bus"] == {"org.g.H": "talk"}
    assert overrides.parse_override(overrides.render_override(data)) == data


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_global_override(version):
    data = overrides.parse_override(text(version, "override-global.keyfile"))
    assert data["environment"] == {"GLOBAL": "1"} and data["context"] == {"sockets": {"x11": "!x11"}}


@pytest.mark.parametrize("version", VERSIONS)
def test_key_fingerprints_of_armour_and_keyring(version):
    fingerprint = text(version, "key.fingerprint").strip()
    assert openpgp.key_fingerprints(text(version, "key.asc")) == [fingerprint]
    keyring = (FIXTURES / version / "flathub.trustedkeys.gpg").read_bytes()
    assert openpgp.key_fingerprints(keyring) == [fingerprint]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_truncation_of_a_keyring_is_a_clear_error(version):
    """Before: a packet cut inside its length field raised struct.error, a traceback instead of a message."""
    data = (FIXTURES / version / "flathub.trustedkeys.gpg").read_bytes()
    whole = openpgp.key_fingerprints(data)
    for length in range(len(data)):
        try:
            found = openpgp.key_fingerprints(data[:length])
        except names.FlatpakError:
            continue
        assert found == whole[: len(found)]
    for first in (0xC6, 0x99):  # new-format tag 6 and old-format tag 6 headers with nothing after them
        for tail in (b"", b"\xff", b"\xff\x00\x00", b"\xe0"):
            with pytest.raises(names.FlatpakError):
                openpgp.key_fingerprints(bytes([first]) + tail)


def test_key_fingerprints_refuse_garbage_and_secret_keys():
    with pytest.raises(names.FlatpakError):
        openpgp.key_fingerprints(b"not a key")
    with pytest.raises(names.FlatpakError, match="SECRET"):
        openpgp.key_fingerprints(b"\x94\x01\x04")
    with pytest.raises(names.FlatpakError):
        openpgp.key_fingerprints("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----\n")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("org.test.Hello", (None, "org.test.Hello", "x86_64", None)),
        ("org.test.Hello//beta", (None, "org.test.Hello", "x86_64", "beta")),
        ("org.test.Hello/aarch64/stable", (None, "org.test.Hello", "aarch64", "stable")),
        ("app/org.test.Hello/x86_64/stable", ("app", "org.test.Hello", "x86_64", "stable")),
        ("runtime/org.test.Platform/x86_64/1", ("runtime", "org.test.Platform", "x86_64", "1")),
        ("runtime/org.test.Platform//24.08", ("runtime", "org.test.Platform", "x86_64", "24.08")),
        ("com.github.tchx84.Flatseal", (None, "com.github.tchx84.Flatseal", "x86_64", None)),
        ("org.test.Other-App", (None, "org.test.Other-App", "x86_64", None)),
    ],
)
def test_parse_ref(spec, expected):
    ref = apps.parse_ref(spec, "x86_64")
    assert (ref["kind"], ref["id"], ref["arch"], ref["branch"]) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "firefox",
        "org.mozilla",
        "org.1mozilla.firefox",
        "org.mo-zilla.firefox",
        "org.test.Hello//",
        "app/org.test.Hello",
        "app/org.test.Hello/x86_64/stable/extra",
        "org.test.Hello/x86_64",
        "org.test.Hello//-beta",
        "org.test.Hello/x86 64/stable",
        "https://dl.flathub.org/repo/appstream/org.mozilla.firefox.flatpakref",
        "org.test.Hello\n",
        "extension/org.test.Hello/x86_64/stable",
    ],
)
def test_parse_ref_rejects(spec):
    with pytest.raises(names.FlatpakError):
        apps.parse_ref(spec, "x86_64")


def test_host_arch():
    assert names.flatpak_arch("x86_64") == "x86_64" and names.flatpak_arch("arm64") == "aarch64"
    assert names.flatpak_arch("i686") == "i386" and names.flatpak_arch("armv7l") == "arm"


def test_columns_arg():
    assert installation.columns_arg(("name", "url")) == "--columns=name:f,url:f"


def test_installation_dir():
    env = {"HOME": "/home/a"}
    assert installation.installation_dir("system", None, {}) == "/var/lib/flatpak"
    assert installation.installation_dir("system", None, {"FLATPAK_SYSTEM_DIR": "/x"}) == "/x"
    assert installation.installation_dir("user", None, env) == "/home/a/.local/share/flatpak"
    assert installation.installation_dir("user", None, dict(env, XDG_DATA_HOME="/d")) == "/d/flatpak"
    assert installation.installation_dir("user", None, dict(env, FLATPAK_USER_DIR="/u")) == "/u"
    assert installation.installation_dir("user", None, dict(env, FLATPAK_USER_DIR="/u"), home="/home/b") == (
        "/home/b/.local/share/flatpak"
    )
    custom = installation.custom_installations(['[Installation "extra"]\nPath=/srv/extra\nDisplayName=Extra\n'])
    assert installation.installation_dir("system", "extra", {}, custom=custom) == "/srv/extra"
    with pytest.raises(names.FlatpakError):
        installation.installation_dir("system", "nope", {}, custom=custom)


def test_parse_flatpakrepo():
    repo = remote_units.parse_flatpakrepo("[Flatpak Repo]\nTitle=Flathub\nUrl=https://dl.flathub.org/repo/\nGPGKey=mQIN\n")
    assert repo == {
        "url": "https://dl.flathub.org/repo/",
        "gpg_key": b"\x99\x02\x0d",
        "title": "Flathub",
        "comment": None,
        "collection_id": None,
    }
    with pytest.raises(names.FlatpakError):
        remote_units.parse_flatpakrepo("[Flatpak Ref]\nUrl=x\n")


# --- remotes --------------------------------------------------------------------------------------------------------


def desired(**values) -> dict:
    base = dict.fromkeys(remote_units.REMOTE_FIELDS)
    base.update({"enabled": True, "gpg_verify": True, "gpg_keys": []})
    base.update(values)
    return base


@pytest.mark.parametrize("version", VERSIONS)
def test_fedora_flathub_converges_in_place_then_is_a_no_op(version):
    fingerprint = text(version, "key.fingerprint").strip()
    current = remote_units.parse_remotes(text(version, "remotes-system.txt"))["flathub"]
    wanted = desired(url="file:///tmp/flatpak-capture/repo", filter=False, gpg_keys=[fingerprint])
    plan = remote_units.plan_remote(current, [fingerprint], wanted, "present")
    assert plan["changed"] is True and plan["action"] == "modify" and plan["import_key"] is False
    assert remote_units.remote_argv(plan, "flathub", ["--system"]) == [
        "remote-modify",
        "--system",
        "--no-filter",
        "--enable",
        "flathub",
    ]
    assert plan["before"]["filter"] == "/tmp/flatpak-capture/filter" and plan["after"]["filter"] is None
    assert plan["before"]["enabled"] is False and plan["after"]["enabled"] is True
    assert plan["before"]["gpg_keys"] == [fingerprint]
    reconciled = remote_units.parse_remotes(text(version, "remotes-system-reconciled.txt"))["flathub"]
    again = remote_units.plan_remote(reconciled, [fingerprint], wanted, "present")
    assert again["changed"] is False and again["action"] is None and again["after"] == plan["after"]


def test_remote_reconciles_every_field_in_one_modify():
    current = {**desired(url="https://a/", title="A", priority=1), "filter": None, "collection_id": None}
    wanted = desired(url="https://b/", title="B", comment="c", priority=10, filter="/etc/f", collection_id="org.b.Repo")
    plan = remote_units.plan_remote(current, [], dict(wanted, gpg_keys=["ABC"]), "present")
    argv = remote_units.remote_argv(plan, "r", ["--user"], key_file="/tmp/k")
    assert argv == [
        "remote-modify",
        "--user",
        "--gpg-import=/tmp/k",
        "--url=https://b/",
        "--title=B",
        "--comment=c",
        "--collection-id=org.b.Repo",
        "--prio=10",
        "--filter=/etc/f",
        "r",
    ]


def test_remote_add_and_delete_and_absent_no_op():
    plan = remote_units.plan_remote(None, None, desired(url="https://x/", gpg_keys=["F1"], title="X"), "present")
    assert plan["action"] == "add" and plan["before"] == {"state": "absent"} and plan["after"]["gpg_keys"] == ["F1"]
    assert remote_units.remote_argv(plan, "x", ["--system"], key_file="/k") == [
        "remote-add",
        "--system",
        "--gpg-import=/k",
        "--title=X",
        "x",
        "https://x/",
    ]
    from_file = remote_units.remote_argv(plan, "x", ["--system"], key_file="/k", repo_file="/tmp/x.flatpakrepo")
    assert from_file[2] == "--from" and from_file[-1] == "/tmp/x.flatpakrepo"
    insecure = remote_units.plan_remote(None, None, desired(url="https://x/", gpg_verify=False, enabled=False), "present")
    assert "--no-gpg-verify" in remote_units.remote_argv(insecure, "x", ["--system"])
    assert "--disable" in remote_units.remote_argv(insecure, "x", ["--system"])
    gone = remote_units.plan_remote(desired(url="https://x/"), [], {}, "absent")
    assert remote_units.remote_argv(gone, "x", ["--system"]) == ["remote-delete", "--system", "--force", "x"]
    assert remote_units.plan_remote(None, None, {}, "absent")["changed"] is False


def test_remote_missing_key_is_imported_extra_keys_are_kept():
    current = desired(url="https://x/")
    plan = remote_units.plan_remote(current, ["OLD"], desired(gpg_keys=["NEW"]), "present")
    assert plan["import_key"] is True and plan["after"]["gpg_keys"] == ["NEW", "OLD"]
    assert remote_units.plan_remote(current, ["OLD", "NEW"], desired(gpg_keys=["NEW"]), "present")["changed"] is False


# --- apps -----------------------------------------------------------------------------------------------------------


@pytest.fixture(params=VERSIONS)
def installed(request):
    return apps.parse_list(text(request.param, "list-system.txt"))


def test_converged_present_is_a_no_op(installed):
    wants = [want("org.test.Hello//stable"), want("org.test.Platform//1"), want("app/org.test.Hello/x86_64/beta")]
    plan = apps.plan_apps(installed, wants, "present", "testrepo")
    assert plan["changed"] is False and apps.install_argv(plan, "testrepo", ["--system"]) is None


def test_exact_matching_branch_arch_and_origin(installed):
    wants = [
        want("org.test.Hello//devel"),  # another branch is installed, not this one
        want("org.test.Hello", "aarch64"),  # another arch is installed
        want("org.test.Other-App"),  # installed, but from insecure
        want("runtime/org.test.Hello/x86_64/stable"),  # the app, not a runtime
    ]
    plan = apps.plan_apps(installed, wants, "present", "testrepo")
    assert plan["install"] == [
        "org.test.Hello/x86_64/devel",
        "org.test.Hello/aarch64/",
        "org.test.Other-App/x86_64/",
        "runtime/org.test.Hello/x86_64/stable",
    ]
    assert plan["reinstall"] is True  # Other-App switches origin in the same call
    argv = apps.install_argv(plan, "testrepo", ["--system"], no_related=True)
    assert argv[:6] == ["install", "--system", "--noninteractive", "-y", "--no-related", "--reinstall"]
    assert argv[6] == "testrepo" and len(argv) == 11
    assert "app/org.test.Other-App/x86_64/stable" not in plan["after"]["refs"]
    assert plan["after"]["refs"]["org.test.Other-App/x86_64/"] == "testrepo"


def test_all_missing_refs_in_one_install_call(installed):
    wants = [want("org.test.A%d" % n) for n in range(10)]
    plan = apps.plan_apps(installed, wants, "present", "testrepo")
    argv = apps.install_argv(plan, "testrepo", ["--system"])
    assert argv[:5] == ["install", "--system", "--noninteractive", "-y", "testrepo"] and len(argv) == 15


def test_exclusive_removes_other_apps_keeps_runtimes(installed):
    plan = apps.plan_apps(installed, [want("org.test.Hello//stable")], "present", "testrepo", exclusive=True)
    assert plan["uninstall"] == ["app/org.test.Hello/x86_64/beta", "app/org.test.Other-App/x86_64/stable"]
    assert plan["install"] == []
    assert sorted(plan["after"]["refs"]) == ["app/org.test.Hello/x86_64/stable", "runtime/org.test.Platform/x86_64/1"]
    assert apps.uninstall_argv(plan, ["--system"]) == [
        "uninstall",
        "--system",
        "--noninteractive",
        "-y",
        "app/org.test.Hello/x86_64/beta",
        "app/org.test.Other-App/x86_64/stable",
    ]


def test_exclusive_does_not_remove_an_app_it_reinstalls_from_the_right_remote(installed):
    wants = [want("org.test.Hello//stable"), want("org.test.Other-App//stable")]
    plan = apps.plan_apps(installed, wants, "present", "testrepo", exclusive=True)
    assert plan["uninstall"] == ["app/org.test.Hello/x86_64/beta"] and plan["reinstall"] is True


@pytest.mark.parametrize("version", VERSIONS)
def test_latest_updates_only_outdated_refs(version):
    installed = apps.parse_list(text(version, "list-system.txt"))
    updates = apps.parse_updates(text(version, "remote-ls-updates.txt"))
    wants = [want("org.test.Hello//stable"), want("org.test.Hello//beta"), want("org.test.New")]
    plan = apps.plan_apps(installed, wants, "latest", "testrepo", updates=updates)
    assert plan["update"] == ["app/org.test.Hello/x86_64/stable"] and plan["install"] == ["org.test.New/x86_64/"]
    assert apps.install_argv(plan, "testrepo", ["--system"]) == [
        "install",
        "--system",
        "--noninteractive",
        "-y",
        "--or-update",
        "testrepo",
        "org.test.New/x86_64/",
        "app/org.test.Hello/x86_64/stable",
    ]
    assert plan["before"]["outdated"] == ["app/org.test.Hello/x86_64/stable"] and plan["after"]["outdated"] == []
    none = apps.parse_updates(text(version, "remote-ls-updates-none.txt"))
    assert apps.plan_apps(installed, wants[:2], "latest", "testrepo", updates=none)["changed"] is False


def test_absent_with_and_without_remote(installed):
    plan = apps.plan_apps(installed, [want("org.test.Other-App")], "absent", "testrepo")
    assert plan["changed"] is False  # installed from insecure, not from testrepo
    plan = apps.plan_apps(installed, [want("org.test.Other-App"), want("org.test.Hello")], "absent", None)
    assert plan["uninstall"] == [
        "app/org.test.Hello/x86_64/beta",
        "app/org.test.Hello/x86_64/stable",
        "app/org.test.Other-App/x86_64/stable",
    ]


def test_present_needs_a_remote(installed):
    with pytest.raises(names.FlatpakError):
        apps.plan_apps(installed, [want("org.test.Hello")], "present", None)


def test_unused_runtimes(installed):
    assert apps.unused_runtimes(installed, [], []) == []
    runtime_only = [ref for ref in installed if ref["kind"] == "runtime"]
    assert apps.unused_runtimes(runtime_only, [], []) == ["runtime/org.test.Platform/x86_64/1"]
    assert apps.unused_runtimes(runtime_only, ["runtime/org.test.Platform/x86_64/1"], []) == []
    assert apps.unused_runtimes(runtime_only, [], ["runtime/org.test.Platform/x86_64/1"]) == []
    assert apps.pinned_patterns("[core]\nxa.pinned=runtime/org.test.Platform/x86_64/1;\n") == [
        "runtime/org.test.Platform/x86_64/1"
    ]


# --- overrides --------------------------------------------------------------------------------------------------------


def options(**given) -> dict:
    base = {key: [] for key in overrides.CONTEXT_LISTS}
    base.update({"persist": [], "environment": {}, "unset_environment": [], "talk_names": [], "own_names": []})
    base["system_talk_names"] = []
    base.update(given)
    return overrides.validate_override(base)


@pytest.mark.parametrize("version", VERSIONS)
def test_override_merge_replaces_same_entries_and_keeps_others(version):
    current = overrides.parse_override(text(version, "override-file.keyfile"))
    plan = overrides.plan_override(
        current, options(filesystems=["home"], sockets=["x11"], environment={"FOO": "baz"}), "merge", "present"
    )
    assert plan["changed"] is True
    assert plan["before"]["filesystems"] == ["!host", "home:ro", "xdg-download:create"]
    assert plan["after"]["filesystems"] == ["!host", "home", "xdg-download:create"]
    assert plan["after"]["sockets"] == ["wayland", "x11"] and plan["after"]["environment"] == {"FOO": "baz"}
    assert plan["after"]["session_bus"] == {"org.a.B": "talk", "org.c.D": "own"}
    assert overrides.parse_override(plan["text"]) == plan["data"]
    same = overrides.plan_override(overrides.parse_override(plan["text"]), options(filesystems=["home"]), "merge", "present")
    assert same["changed"] is False


@pytest.mark.parametrize("version", VERSIONS)
def test_override_exact_and_reset(version):
    current = overrides.parse_override(text(version, "override-file.keyfile"))
    plan = overrides.plan_override(current, options(nosockets=["x11"], features=["!bluetooth"]), "exact", "present")
    assert plan["after"] == {"features": ["!bluetooth"], "sockets": ["!x11"]}
    assert plan["text"] == "[Context]\nsockets=!x11;\nfeatures=!bluetooth;\n"
    reset = overrides.plan_override(current, options(), "merge", "absent")
    assert reset["changed"] is True and reset["remove_file"] is True and reset["after"] == {}
    partial = overrides.plan_override(current, options(talk_names=["org.a.B"], unset_environment=["BAZ"]), "merge", "absent")
    assert partial["after"]["session_bus"] == {"org.c.D": "own"} and "unset_environment" not in partial["after"]
    assert overrides.plan_override(overrides.parse_override(""), options(), "merge", "absent")["changed"] is False


def test_override_exact_from_nothing_writes_what_flatpak_writes():
    plan = overrides.plan_override(
        overrides.parse_override(""),
        options(unset_environment=["BAZ"], own_names=["org.c.D"], system_talk_names=["org.g.H"], persist=[".mozilla"]),
        "exact",
        "present",
    )
    assert plan["text"] == (
        "[Context]\npersistent=.mozilla;\nunset-environment=BAZ;\n\n[Session Bus Policy]\norg.c.D=own\n\n"
        "[System Bus Policy]\norg.g.H=talk\n\n[Environment]\nBAZ=\n"
    )


def test_override_values_are_escaped_as_glib_writes_them():
    """flatpak 1.14.10 ``override --env='FOO=C:\\new' --env='BAR= lead'`` writes ``FOO=C:\\\\new`` and ``BAR=\\slead``;
    unescaped, a backslash-n would be read back as a newline."""
    plan = overrides.plan_override(
        overrides.parse_override(""), options(environment={"FOO": "C:\\new", "BAR": " lead"}), "merge", "present"
    )
    assert "FOO=C:\\\\new\n" in plan["text"] and "BAR=\\slead\n" in plan["text"]
    written = overrides.parse_override(plan["text"])
    assert written["environment"] == {"BAR": " lead", "FOO": "C:\\new"}
    again = overrides.plan_override(written, options(environment={"FOO": "C:\\new", "BAR": " lead"}), "merge", "present")
    assert again["changed"] is False


@pytest.mark.parametrize(
    "given",
    [
        {"sockets": ["telepathy"]},
        {"shares": ["network"], "unshares": ["network"]},
        {"filesystems": ["home:rx"]},
        {"filesystems": ["relative/path"]},
        {"nofilesystems": ["home:ro"]},
        {"filesystems": ["!home"]},
        {"environment": {"1BAD": "x"}},
        {"environment": {"A": "x"}, "unset_environment": ["A"]},
        {"talk_names": ["notaname"]},
        {"persist": ["/abs"]},
        {"persist": ["../up"]},
        {"devices": ["dri;x11"]},
        {"features": ["superpowers"]},
    ],
)
def test_validate_override_rejects(given):
    with pytest.raises(names.FlatpakError):
        options(**given)
