"""Line-preserving keyfile edits, on the file rpm-ostree ships."""

from __future__ import annotations

from ansible_collections.immutable.hosts.plugins.module_utils.common._keyfile import set_values
from ansible_collections.immutable.hosts.plugins.module_utils.ostree import _admin as ostree

SHIPPED = """# Entries in this file show the compile time defaults.
# You can change settings by editing this file.
# For option meanings, see rpm-ostreed.conf(5).

[Daemon]
#AutomaticUpdatePolicy=none
#IdleExitTimeout=60
#LockLayering=false
#Recommends=true
"""


def test_setting_goes_after_its_commented_default_and_everything_else_stays():
    after = set_values(SHIPPED, "Daemon", {"AutomaticUpdatePolicy": "stage", "LockLayering": "true"})
    assert after.splitlines() == [
        "# Entries in this file show the compile time defaults.",
        "# You can change settings by editing this file.",
        "# For option meanings, see rpm-ostreed.conf(5).",
        "",
        "[Daemon]",
        "#AutomaticUpdatePolicy=none",
        "AutomaticUpdatePolicy=stage",
        "#IdleExitTimeout=60",
        "#LockLayering=false",
        "LockLayering=true",
        "#Recommends=true",
    ]
    assert ostree.parse_rpm_ostreed_conf(after)["policy"] == "stage"


def test_live_line_is_replaced_in_place_and_duplicates_dropped():
    text = "[Daemon]\nAutomaticUpdatePolicy=check\nIdleExitTimeout=5\nAutomaticUpdatePolicy=apply\n"
    assert (
        set_values(text, "Daemon", {"AutomaticUpdatePolicy": "none"})
        == "[Daemon]\nAutomaticUpdatePolicy=none\nIdleExitTimeout=5\n"
    )


def test_missing_group_and_missing_file():
    assert set_values("", "Daemon", {"IdleExitTimeout": 0}) == "[Daemon]\nIdleExitTimeout=0\n"
    other = "[Other]\nA=1\n"
    assert set_values(other, "Daemon", {"LockLayering": "false"}) == "[Other]\nA=1\n\n[Daemon]\nLockLayering=false\n"


def test_key_lands_at_the_end_of_its_group_not_in_the_next():
    text = "[Daemon]\nIdleExitTimeout=60\n\n[Experimental]\nFoo=1\n"
    after = set_values(text, "Daemon", {"LockLayering": "true"})
    assert after == "[Daemon]\nIdleExitTimeout=60\nLockLayering=true\n\n[Experimental]\nFoo=1\n"


def test_none_leaves_a_key_alone_and_same_input_is_idempotent():
    once = set_values(SHIPPED, "Daemon", {"AutomaticUpdatePolicy": "stage", "IdleExitTimeout": None})
    assert set_values(once, "Daemon", {"AutomaticUpdatePolicy": "stage"}) == once
