"""The bad-input table: every module refuses hostile or malformed input with a message that says what is wrong, runs
nothing but reads, and changes no file of the host (bad_input_harness).  Groups: line breaks and controls (ASCII and
Unicode), shell metacharacters, options smuggled as values, path traversal, links planted by a user, truncated
binary input, oversized input, contradictions.  The CLI's table (adopt, lab) is tests/cli/test_bad_input_table.py."""

from __future__ import annotations

import base64
import os

import pytest

from ansible_collections.immutable.hosts.tests.unit.plugins.modules.bad_input_harness import (
    FIXTURES,
    BadInputHost,
    read_only,
    tree,
)

SEPARATORS = {char: "U+%04X" % ord(char) for char in "\n\r\u2028\u2029\x85\x0b\x00\x1b"}
SHELL = ["htop;reboot", "$(reboot)", "`reboot`", "a|b", "a&&b", "a>b", "a b"]
BIG = "x" * 70000
IMAGE = "quay.io/fedora/fedora-silverblue:42"
UNIT = {"image": "a.io/b:c"}
OVERRIDE = {"app": "org.test.Hello"}

CASES: list = []


def case(module: str, args: dict, message: str, needs_root: bool = False) -> None:
    CASES.append(pytest.param(module, args, message, needs_root, id="%d-%s" % (len(CASES), module)))


# --- line breaks and control characters, ASCII and Unicode: the one rule (module_utils/text.py) -------------------------
for char, code in SEPARATORS.items():
    case("rebase", {"image": "quay.io/fedora/x" + char}, "image contains " + code)
    case("rebase", {"ref": "fedora:fedora/42/x86_64/silverblue" + char}, "refspec contains " + code)
    case("rpm_ostree_packages", {"name": ["htop" + char]}, "name contains " + code)
    case("rpm_ostree_packages", {"override_remove": ["firefox" + char]}, "override_remove contains " + code)
    case("kargs", {"args": ["foo=a" + char + "b"]}, "contains " + code)
    case("flatpak", {"name": ["org.example.App" + char], "remote": "flathub"}, "ref contains " + code)
    case("flatpak_remote", {"name": "lab", "url": "https://x/" + char}, "url contains " + code)
    case("flatpak_remote", {"name": "lab", "url": "https://x/", "title": "T" + char}, "title contains " + code)
    case("flatpak_remote", {"name": "lab", "url": "https://x/", "comment": "C" + char}, "comment contains " + code)
    case("flatpak_override", dict(OVERRIDE, environment={"A": "x" + char}), "environment: the value of A contains " + code)
    case("flatpak_override", dict(OVERRIDE, filesystems=["/srv/" + char]), "filesystems entry contains " + code)
    case("quadlet", {"name": "web", "container": dict(UNIT, environment={"A": "x" + char})}, code)
    case("quadlet", {"name": "web", "container": {"image": "a.io/b:c" + char}}, code)
    case("quadlet", {"name": "web", "container": UNIT, "unit": {"description": "d" + char}}, code)
    case("rootless_user", {"name": "core" + char}, "name contains " + code)
    if char != "\n":
        case("quadlet", {"name": "web", "content": "[Container]\nImage=a.io/b:c" + char + "\n"}, "content contains " + code)

# --- shell metacharacters where a grammar applies (argv lists never meet a shell; the grammar refuses them anyway) ----
for value in SHELL:
    blank = " " in value
    case("rebase", {"ref": "fedora:" + value}, "contains whitespace, quotes or shell metacharacters")
    case("rebase", {"image": "quay.io/fedora/" + value}, "contains whitespace, quotes or shell metacharacters")
    case("rpm_ostree_packages", {"name": [value]}, "is not a package name")
    case(
        "flatpak",
        {"name": ["org.example." + value], "remote": "flathub"},
        "is not valid: give ID" if blank else "is not a valid flatpak ID",
    )
    case("flatpak_remote", {"name": value, "url": "https://x/"}, "remote name %r is not valid" % value)
    case("flatpak_override", {"app": "org.example." + value, "sockets": ["x11"]}, "is not a valid flatpak application ID")
    case("quadlet", {"name": value, "container": UNIT}, "is not a valid unit name")
    case("rootless_user", {"name": value}, "is not a valid login name")
    case("kargs", {"args": ["foo" + value + "=1"]}, "blank outside double quotes" if blank else "has an invalid key")

# --- options smuggled as values ----------------------------------------------------------------------------------------
case(
    "rebase",
    {"image": "-h", "transport": "oci", "signature": "unverified"},
    "starts with '-', which a command would read as an option",
)
case("rebase", {"image": "--help", "transport": "oci-archive", "signature": "unverified"}, "starts with '-'")
case("rebase", {"ref": "--reboot"}, "starts with '-'")
case("rebase", {"ref": "-fedora:fedora/42/x86_64/silverblue"}, "starts with '-'")
case("rpm_ostree_packages", {"name": ["--uninstall=htop"]}, "is not a package name")
case("rpm_ostree_packages", {"override_remove": ["--all"]}, "is not a package name")
case("rpm_ostree_packages", {"override_reset": ["--all"]}, "is not a package name")
case("kargs", {"args": ["--append=quiet"]}, "has an invalid key")
case("kargs", {"args": ["-rf"]}, "has an invalid key")
case("flatpak", {"name": ["--user"], "remote": "flathub"}, "is not a valid flatpak ID")
case("flatpak", {"name": ["org.example.App"], "remote": "--if-not-exists"}, "remote name '--if-not-exists' is not valid")
case("flatpak_remote", {"name": "--if-not-exists", "url": "https://x/"}, "is not valid")
case("flatpak_override", {"app": "--system", "sockets": ["x11"]}, "is not a valid flatpak application ID")
case("flatpak_override", dict(OVERRIDE, installation="--user", sockets=["x11"]), "is not a valid installation name")
case("flatpak_override", dict(OVERRIDE, user="--root", sockets=["x11"]), "is not a valid user name")
case("quadlet", {"name": "-x", "container": UNIT}, "is not a valid unit name")
case("rootless_user", {"name": "-r"}, "is not a valid login name")
case("quadlet", {"name": "web", "user": "--help", "container": UNIT}, "does not exist")

# --- path traversal ---------------------------------------------------------------------------------------------------
case("quadlet", {"name": "../evil", "container": UNIT}, "not a path")
case("quadlet", {"name": "a/b", "container": UNIT}, "not a path")
case("quadlet", {"name": "..", "container": UNIT}, "not a path")
case("quadlet", {"name": "web.container", "container": UNIT}, "give name without its extension")
case("flatpak_override", {"app": "../../etc/passwd", "sockets": ["x11"]}, "is not a valid flatpak application ID")
case("flatpak_override", dict(OVERRIDE, persist=["../.."]), "must be a path relative to the home directory, without '..'")
case("flatpak_override", dict(OVERRIDE, persist=["/etc"]), "must be a path relative to the home directory")
case("flatpak_override", dict(OVERRIDE, installation="../x", sockets=["x11"]), "is not a valid installation name")
case("flatpak_remote", {"name": "../x", "url": "https://x/"}, "is not valid")
case("flatpak_remote", {"name": "lab", "url": "https://x/", "filter": "../filter"}, "filter is the absolute path")
case("flatpak_remote", {"name": "lab", "url": "https://x/", "gpg_key": "../key.gpg"}, "is an absolute path to a key file")
case("rootless_user", {"name": "../x"}, "may not contain '/'")
case("flatpak", {"name": ["app/../../x/stable"], "remote": "flathub"}, "not")
case("rpm_ostree_packages", {"name": ["../../tmp/evil.rpm"]}, "is not a package name")

# --- links a user planted in a tree root acts in ---------------------------------------------------------------------
case("quadlet", {"name": "linked", "user": "core", "container": UNIT}, "linked.container is a symbolic link", needs_root=True)
case("quadlet", {"name": "web", "user": "core", "container": UNIT, "_ansible_check_mode": True}, "containers is a symbolic link", needs_root=True)  # fmt: skip
case("flatpak_override", {"app": "org.test.Linked", "sockets": ["x11"]}, "org.test.Linked is a symbolic link")
case(
    "flatpak_override",
    {"app": "org.test.Linked", "state": "absent", "_ansible_check_mode": True},
    "org.test.Linked is a symbolic link",
)

# --- truncated or corrupt binary input ---------------------------------------------------------------------------------
case("rpm_ostree_packages", {"name": ["@TMP@/truncated-1-1.noarch.rpm"]}, "cannot read the RPM header")
case("rpm_ostree_packages", {"name": ["@TMP@/garbage-1-1.noarch.rpm"]}, "lead magic missing")
case("rpm_ostree_packages", {"override_replace": ["@TMP@/truncated-1-1.noarch.rpm"]}, "not a complete RPM file")
case("flatpak_remote", {"name": "lab", "url": "https://x/", "gpg_key": "@TMP@/truncated.gpg"}, "truncated OpenPGP key data")
ARMOUR = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBF!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"
case("flatpak_remote", {"name": "lab", "url": "https://x/", "gpg_key": ARMOUR}, "not valid base64")
case("flatpak_remote", {"name": "lab", "flatpakrepo_url": "@TMP@/broken.flatpakrepo"}, "truncated OpenPGP key data")
case("flatpak_remote", {"name": "lab", "flatpakrepo_url": "@TMP@/urlless.flatpakrepo"}, "no [Flatpak Repo] group with a Url")

# --- oversized input -----------------------------------------------------------------------------------------------------
case("rebase", {"image": "quay.io/fedora/" + BIG}, "characters long")
case("rebase", {"ref": "fedora:" + BIG}, "characters long")
case("rpm_ostree_packages", {"name": [BIG]}, "characters long")
case("kargs", {"args": ["foo=" + BIG]}, "characters long")
case("flatpak", {"name": ["org.example." + BIG], "remote": "flathub"}, "characters long")
case("flatpak_remote", {"name": "lab", "url": "https://x/" + BIG}, "characters long")
case("flatpak_remote", {"name": BIG, "url": "https://x/"}, "at most 255")
case("flatpak_override", dict(OVERRIDE, environment={"A": BIG}), "characters long")
case("flatpak_override", dict(OVERRIDE, filesystems=["/srv/" + BIG]), "characters long")
case("quadlet", {"name": "web", "container": dict(UNIT, environment={"A": BIG})}, "characters long")
case("quadlet", {"name": "web", "content": "[Container]\nImage=a.io/b:c\n" + "# " + "x" * (1024 * 1024) + "\n"}, "content is")
case("quadlet", {"name": "w" * 300, "container": UNIT}, "is not a valid unit name")
case("rootless_user", {"name": BIG}, "a login name has at most 32")

# --- contradictions and refusals by policy ------------------------------------------------------------------------------
case("rebase", {"image": "ostree-unverified-registry:" + IMAGE}, "contradicts signature=signed")
case("rebase", {"image": IMAGE, "signature": "remote"}, "signature_remote")
case("rebase", {"ref": "fedora:fedora/42/x86_64/silverblue", "signature": "unverified"}, "apply to images")
case("rebase", {"image": IMAGE, "ref": "fedora:fedora/42/x86_64/silverblue"}, "mutually exclusive")
case("rebase", {"image": IMAGE, "backend": "bootc", "install": ["htop"]}, "install layers packages with rpm-ostree")
case("rpm_ostree_packages", {"name": ["http://mirror.example/x-1-1.noarch.rpm"]}, "plain http:// RPMs are not verified")
case("rpm_ostree_packages", {"name": ["htop"], "state": "absent", "apply_live": True}, "apply_live can only add packages")
case("rpm_ostree_packages", {"name": ["htop", "htop"]}, "is listed twice")
case("rpm_ostree_packages", {"override_reset": ["all", "kernel"]}, "either package names or the single value 'all'")
case("kargs", {"args": ["ostree=/ostree/boot.1/x"]}, "managed by OSTree itself")
case("kargs", {"args": ['foo="a b']}, "unbalanced double quote")
case("kargs", {"args": ["foo='a b'"]}, "blank outside double quotes")
case("kargs", {"args": ["quiet", "quiet"]}, "is listed twice")
case("flatpak_remote", {"name": "lab", "url": "https://x/", "gpg_verify": False}, "confirm with allow_insecure=true")
case("flatpak_remote", {"name": "lab", "flatpakrepo_url": "http://dl.example/lab.flatpakrepo"}, "plain HTTP")
case("flatpak_remote", {"name": "lab", "url": "ftp://x/"}, "is not an http(s):// or file:// URL")
case("flatpak_override", dict(OVERRIDE, sockets=["x11"], nosockets=["x11"]), "sockets and nosockets both list x11")
case("flatpak_override", dict(OVERRIDE, filesystems=["home:rx"]), "the mode after ':' is ro, rw or create")
case("flatpak_override", dict(OVERRIDE, environment={"A": "1"}, unset_environment=["A"]), "both set in environment and listed")
case("flatpak", {"name": ["org.example.App"], "state": "absent", "exclusive": True}, "exclusive applies to state=present")
case("flatpak", {"name": ["org.example.App"]}, "state=present needs remote")
case("quadlet", {"name": "web", "container": dict(UNIT, environment={"CPU": "50%"})}, "write %% for a literal %")
case("quadlet", {"name": "web", "container": dict(UNIT, frobnicate=1)}, "unknown key 'frobnicate'")
case("quadlet", {"name": "web", "container": UNIT, "content": "[Container]\nImage=x\n"}, "content excludes the section options")
case("quadlet", {"name": "web", "container": dict(UNIT, remap_uid="1")}, "unknown key")
case("quadlet", {"name": "web", "kind": "pod", "container": UNIT}, "container options were given for a unit of kind pod")
case("rootless_user", {"name": "root"}, "root runs rootful containers")
case("rootless_user", {"name": "core", "subuid_count": 0}, "subuid_count must be between 1 and")
case("update_policy", {"idle_exit_timeout": -1}, "idle_exit_timeout is 0")
case("update_policy", {"policy": "sometimes"}, "value of policy must be one of")
case(
    "deployment", {"upgrade": "stage", "lock_finalization": True, "rollback": True}, "rollback and upgrade contradict each other"
)
case("ostree_facts", {"status_retries": -1}, "status_retries must be 0 or more")

# --- the whole host: every resource is checked before anything runs, and the message names the resource -----------
UNIT_TEXT = "[Container]\nImage=a.io/b:c\n"
case("host_state", {"users": [{"name": "core", "quadlets": [{"name": "web", "content": UNIT_TEXT, "frob": 1}]}]}, "frob")
case(
    "host_state",
    {"os": {"rebase": {"ref": "fedora:fedora/42/x86_64/silverblue", "image": "quay.io/a/b:1"}}},
    "mutually exclusive",
)
case("host_state", {"os": {"kargs": [{"args": ["ostree=/x"]}]}}, "kargs: ")
case("host_state", {"flatpak": [{"scope": "system", "overrides": [{"app": "not an id"}]}]}, "flatpak_override not an id: ")
case(
    "host_state",
    {
        "flatpak": [
            {
                "scope": "system",
                "apps_exclusive": True,
                "apps": [{"name": "a.b.C", "remote": "x"}, {"name": "a.b.D", "remote": "y"}],
            }
        ]
    },
    "from one remote",
)
case("host_state", {"users": [{"name": "core", "quadlets": [{"name": "../evil", "content": UNIT_TEXT}]}]}, "not a path")
case("host_state", {"users": [{"name": "root"}]}, "rootless_user root: ")
case("host_state", {"secrets": [{"name": "db", "user": "nobody-at-all", "data": "a-long-secret"}]}, "does not exist")
case(
    "host_state",
    {"flatpak": [{"user": "core", "scope": "system", "apps": [{"name": "a.b.C", "remote": "x"}]}]},
    "needs scope=user",
)
case("podman_secret", {"name": "../db", "data": "a-long-secret"}, "is not valid")
case("podman_secret", {"name": "db"}, "missing: data")
case("podman_secret", {"name": "db", "data": "a-long-secret", "state": "gone"}, "value of state must be one of")


def planted(host: BadInputHost, tmp_path) -> None:
    """What the cases above expect on the host besides the harness: links, broken files."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$very-secret-hash:19000::::::\n")
    secret.chmod(0o600)
    units = host.root / "home/core/.config/containers/systemd"
    os.symlink(secret, units / "linked.container")
    os.symlink(secret, host.root / "var/lib/flatpak/overrides/org.test.Linked")
    srv = host.root / "srv"  # files the cases name, as the host names them: /srv/...
    srv.mkdir()
    rpm = (FIXTURES / "rpms/rpmfusion-free-release-41-1.noarch.rpm").read_bytes()
    (srv / "truncated-1-1.noarch.rpm").write_bytes(rpm[:200])
    (srv / "garbage-1-1.noarch.rpm").write_bytes(b"\x00" * 4096)
    keyring = (FIXTURES / "flatpak/1.16.6/flathub.trustedkeys.gpg").read_bytes()
    (srv / "truncated.gpg").write_bytes(keyring[:3])
    (srv / "broken.flatpakrepo").write_text(
        "[Flatpak Repo]\nUrl=https://x/\nGPGKey=%s\n" % base64.b64encode(keyring[:3]).decode()
    )
    (srv / "urlless.flatpakrepo").write_text("[Flatpak Repo]\nTitle=no url\n")


def with_paths(value):
    """@TMP@ is the host's /srv, where :func:`planted` put the cases' files."""
    if isinstance(value, str):
        return value.replace("@TMP@", "/srv")
    if isinstance(value, list):
        return [with_paths(item) for item in value]
    if isinstance(value, dict):
        return {key: with_paths(item) for key, item in value.items()}
    return value


def test_the_table_is_as_large_as_promised():
    assert len(CASES) >= 200, len(CASES)


@pytest.mark.parametrize(("module", "args", "message", "needs_root"), CASES)
def test_bad_input_fails_with_its_message_and_changes_nothing(tmp_path, capsys, module, args, message, needs_root):
    if needs_root and os.geteuid() != 0:
        pytest.skip("a user's tree with another owner needs root")
    root = tmp_path / "host"
    host = BadInputHost(root, capsys)
    planted(host, tmp_path)
    if "containers is a symbolic link" in message:
        units = root / "home/core/.config/containers"
        os.rename(units, root / "home/core/.config/containers.real")
        os.symlink(root / "etc/containers", units)
    before = tree(tmp_path)
    result = host.run(module, with_paths(args))
    assert result.get("failed") is True, result
    if "U+0000" in message and "embedded null character" in result["msg"]:
        # ansible-core 2.21 refuses a NUL in a logged string argument itself, before the module runs.
        message = "embedded null character"
    assert message in result["msg"], result["msg"]
    assert "Traceback" not in result["msg"] and "very-secret-hash" not in str(result)
    assert read_only(host.tools.calls) == [], "ran more than reads"
    assert tree(tmp_path) == before, "changed a file"
