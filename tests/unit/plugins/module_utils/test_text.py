"""One rule for line breaks: values that reach a line-based file or a command line hold no character any reader
treats as a line break or control, and line-based files are split at "\\n" only."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.common import _text as text
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _names as names
from ansible_collections.immutable.hosts.plugins.module_utils.flatpak import _overrides as overrides
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _kargs as kargs
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet_keys as keys
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _rootless as rootless

# Every character Python's str.splitlines() breaks at besides "\n", and the ones systemd's read_line() does.
SPLITLINES_BREAKS = ["\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("char", SPLITLINES_BREAKS + ["\n", "\x00", "\x1b", "\x7f", "\x9b"])
def test_every_break_and_control_is_refused(char):
    with pytest.raises(ValueError, match=r"U\+%04X" % ord(char)):
        text.check_value("a%sb" % char, "value")


def test_files_split_at_newline_only():
    assert text.split_lines("a\u2028b\x85c\r\nd\n") == ["a\u2028b\x85c\r", "d"]
    assert text.check_content("[Unit]\n\tDescription=x\n", "content") == "[Unit]\n\tDescription=x\n"
    with pytest.raises(ValueError, match="U\\+2028"):
        text.check_content("[Unit]\u2028Description=x\n", "content")


def test_flatpak_override_environment_cannot_smuggle_a_context_line():
    """Before: the value was written as is; re-parsed with splitlines() it became a real filesystems=host line."""
    params = {"environment": {"FOO": "a\u2028[Context]\u2028filesystems=host"}}
    with pytest.raises(names.FlatpakError, match="U\\+2028"):
        overrides.validate_override(params)
    # A file that holds such a value (written by someone else) is read as flatpak reads it: one line.
    parsed = overrides.parse_override("[Environment]\nFOO=a\u2028[Context]\u2028filesystems=host\n")
    assert parsed["context"] == {} and list(parsed["environment"]) == ["FOO"]


def test_quadlet_value_cannot_rename_the_service():
    """Before: ContainerName=x<U+2028>ServiceName=sshd re-parsed as a ServiceName= line, so the module managed sshd."""
    with pytest.raises(keys.InvalidQuadlet, match="U\\+2028"):
        keys.render_unit("container", {"container": {"image": "a.io/b:c", "container_name": "x\u2028ServiceName=sshd"}})
    sections = keys.parse_unit("[Container]\nImage=a.io/b:c\nContainerName=x\u2028ServiceName=sshd\n")
    assert keys.service_name("web", "container", sections) == "web.service"


def test_karg_cannot_split_the_options_line():
    """Before: foo=a<U+2028>b was accepted, and the BLS options line no longer parsed."""
    with pytest.raises(kargs.InvalidKarg, match="U\\+2028"):
        kargs.plan_kargs(["rw"], ["foo=a\u2028b"], "present")
    entry = ostree.parse_bls_entry("title x\noptions rw foo=a\u2028b ostree=/ostree/boot.1/f/c/0\nversion 1\n")
    assert entry["kargs"] == ["rw", "foo=a\u2028b", "ostree=/ostree/boot.1/f/c/0"] and entry["version"] == "1"


def test_subid_files_split_at_newline_only():
    entries = rootless.parse_subid("alice:100000:65536\n")
    assert entries == [{"owner": "alice", "start": 100000, "count": 65536, "line": 1}]
    with pytest.raises(rootless.InvalidRootless):
        rootless.parse_subid("alice:100000:65536\u2028bob:1:1\n")
