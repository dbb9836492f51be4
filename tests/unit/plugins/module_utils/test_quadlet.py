"""Quadlet units: key tables, rendering against golden files, parsing and round trip, dry-run output, the plan."""

from __future__ import annotations

import pytest

from ansible_collections.immutable.hosts.plugins.module_utils.podman import _instance as instance
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet as quadlet
from ansible_collections.immutable.hosts.plugins.module_utils.podman import _quadlet_keys as keys
from ansible_collections.immutable.hosts.tests.unit.plugins.module_utils.quadlet_cases import CASES, SERVICES, golden, split_words

# podman 5.4.2's keys per section, as its generator accepts them (deprecated Remap*/VolatileTmp left out).
PODMAN_54_COUNTS = {"Container": 82, "Pod": 21, "Volume": 14, "Network": 16, "Kube": 15, "Image": 15, "Build": 24, "Quadlet": 1}


# --- the key table ----------------------------------------------------------------------------------------------


def test_every_section_key_has_exactly_one_option_name():
    every_key = set().union(*keys.SECTION_KEYS.values())
    assert every_key == set(keys.KEY_OPTIONS)
    assert len(set(keys.KEY_OPTIONS.values())) == len(keys.KEY_OPTIONS)
    assert {section: len(keys) for section, keys in keys.SECTION_KEYS.items()} == PODMAN_54_COUNTS


@pytest.mark.parametrize(
    "option, key",
    [
        ("publish_port", "PublishPort"),
        ("podman_args", "PodmanArgs"),
        ("dns_option", "DNSOption"),
        ("ip6", "IP6"),
        ("uid_map", "UIDMap"),
        ("sub_uid_map", "SubUIDMap"),
        ("user_ns", "UserNS"),
        ("health_startup_cmd", "HealthStartupCmd"),
        ("security_label_file_type", "SecurityLabelFileType"),
        ("containers_conf_module", "ContainersConfModule"),
        ("PublishPort", "PublishPort"),
    ],
)
def test_snake_case_maps_to_the_quadlet_key(option, key):
    assert keys.quadlet_key("Container", option) == key


@pytest.mark.parametrize(
    "section, option, key",
    [
        ("Network", "ipv6", "IPv6"),
        ("Network", "ipam_driver", "IPAMDriver"),
        ("Network", "ip_range", "IPRange"),
        ("Image", "tls_verify", "TLSVerify"),
        ("Image", "os", "OS"),
        ("Build", "force_rm", "ForceRM"),
        ("Kube", "exit_code_propagation", "ExitCodePropagation"),
        ("Quadlet", "default_dependencies", "DefaultDependencies"),
    ],
)
def test_snake_case_in_other_sections(section, option, key):
    assert keys.quadlet_key(section, option) == key


def test_a_key_of_another_section_is_refused_with_a_suggestion():
    with pytest.raises(keys.InvalidQuadlet, match=r"unknown key 'yaml' in the \[Container\] section"):
        keys.quadlet_key("Container", "yaml")
    with pytest.raises(keys.InvalidQuadlet, match="did you mean publish_port"):
        keys.quadlet_key("Container", "publish_ports")


def test_deprecated_keys_point_to_their_replacement():
    with pytest.raises(keys.InvalidQuadlet, match=r"RemapUsers is deprecated.*user_ns"):
        keys.quadlet_key("Container", "RemapUsers")


@pytest.mark.parametrize(
    "section, option, key",
    [
        ("Unit", "description", "Description"),
        ("Unit", "requires_mounts_for", "RequiresMountsFor"),
        ("Service", "timeout_start_sec", "TimeoutStartSec"),
        ("Service", "cpu_quota", "CPUQuota"),
        ("Service", "oom_score_adjust", "OOMScoreAdjust"),
        ("Service", "PIDFile", "PIDFile"),
        ("Install", "wanted_by", "WantedBy"),
    ],
)
def test_systemd_keys(section, option, key):
    assert keys.systemd_key(section, option) == key


# --- rendering ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", sorted(CASES))
def test_rendering_matches_the_golden_file(name, kind):
    assert keys.render_unit(kind, CASES[(name, kind)], "user") == golden(name, kind)


@pytest.mark.parametrize("name, kind", sorted(CASES))
def test_round_trip_through_the_parser(name, kind):
    text = golden(name, kind)
    assert keys.render(keys.parse_unit(text)) == text


@pytest.mark.parametrize("name, kind", sorted(CASES))
def test_service_name_per_kind(name, kind):
    assert keys.service_name(name, kind, keys.parse_unit(golden(name, kind))) == SERVICES[(name, kind)]


def test_service_name_follows_service_name_key():
    assert keys.service_name("web", "container", {"Container": [("ServiceName", "frontend")]}) == "frontend.service"


def test_rendering_is_independent_of_option_order():
    options = {"container": {"image": "a.io/b:c", "volume": ["x:/x", "y:/y"], "environment": {"B": "2", "A": "1"}}}
    reordered = {"container": {"environment": {"A": "1", "B": "2"}, "volume": ["x:/x", "y:/y"], "image": "a.io/b:c"}}
    assert keys.render_unit("container", options) == keys.render_unit("container", reordered)
    assert keys.render_unit("container", options).index("Volume=x:/x") < keys.render_unit("container", options).index(
        "Volume=y:/y"
    )


@pytest.mark.parametrize(
    "value, line",
    [
        (["/bin/sh", "-c", "echo hi"], 'Exec=/bin/sh -c "echo hi"'),
        (["/bin/echo", 'say "hi"'], 'Exec=/bin/echo "say \\"hi\\""'),
        (["/bin/echo", "back\\slash"], 'Exec=/bin/echo "back\\\\slash"'),
        (["/bin/echo", ""], 'Exec=/bin/echo ""'),
        ("/bin/sh -c 'as written'", "Exec=/bin/sh -c 'as written'"),
    ],
)
def test_exec_quoting(value, line):
    text = keys.render_unit("container", {"container": {"image": "a.io/b:c", "exec": value}})
    assert line + "\n" in text


def test_quoted_words_split_back_to_the_arguments():
    args = ["/bin/sh", "-c", 'echo "a b" \\ c', "", "it's"]
    rendered = " ".join(keys.quote_word(arg) for arg in args)
    assert split_words(rendered) == args


def test_enabled_adds_the_default_target_per_scope():
    options = {"container": {"image": "a.io/b:c"}}
    assert keys.render_unit("container", options, "user", enabled=True).endswith("[Install]\nWantedBy=default.target\n")
    assert keys.render_unit("container", options, "system", enabled=True).endswith("[Install]\nWantedBy=multi-user.target\n")
    assert "[Install]" not in keys.render_unit("container", options, "user", enabled=None)
    own = dict(options, install={"wanted_by": "graphical.target"})
    assert keys.render_unit("container", own, "user", enabled=True).endswith("WantedBy=graphical.target\n")


def test_booleans_and_numbers():
    text = keys.render_unit(
        "container", {"container": {"image": "a.io/b:c", "run_init": True, "pids_limit": 100, "notify": False}}
    )
    assert "RunInit=true\n" in text and "PidsLimit=100\n" in text and "Notify=false\n" in text


BAD_OPTIONS = [
    ("container", {"container": {"image": "a.io/b:c", "frobnicate": 1}}, "unknown key 'frobnicate'"),
    ("container", {"container": {"image": "a.io/b:c", "Yaml": "x"}}, "unknown key 'Yaml'"),
    ("container", {"container": {"image": "a.io/b:c\nExec=/bin/evil"}}, "line break"),
    ("container", {"container": {"image": "a.io/b:c", "environment": {"A": "1\nExecStartPre=/bin/evil"}}}, "line break"),
    ("container", {"container": {"image": "a.io/b:c", "exec": ["/bin/true", "x\ry"]}}, "control character"),
    ("container", {"container": {"image": "a.io/b:c", "label": "a=b\x00"}}, "control character"),
    ("container", {"container": {"image": "a.io/b:c"}, "unit": {"description": "x\ny"}}, "line break"),
    ("container", {"container": {"image": "a.io/b:c", "environment": {"BAD NAME": "1"}}}, "not a valid name"),
    ("container", {"container": {"image": "a.io/b:c", "environment": {"A": {"nested": 1}}}}, "string or number"),
    ("container", {"container": {"image": "a.io/b:c", "publish_port": {"8080": 80}}}, "not a mapping"),
    ("container", {"container": {"image": "a.io/b:c", "volume": [["nested"]]}}, "list items"),
    ("container", {"container": {"image": " a.io/b:c"}}, "leading or trailing blanks"),
    ("container", {"container": {"image": "a.io/b:c\\"}}, "backslash"),
    ("container", {"container": {"exec": "/bin/true"}}, "needs an image"),
    ("container", {"container": {"image": "a.io/b:c", "rootfs": "/srv/root"}}, "either image or rootfs"),
    ("container", {"container": {"image": "a.io/b:c", "publish_port": "80", "PublishPort": "81"}}, "sets PublishPort twice"),
    ("container", {"container": {"image": "a.io/b:c"}, "pod": {"pod_name": "x"}}, "pod options were given"),
    ("container", {"container": {"image": "a.io/b:c"}, "install": {"wanted_bye": "x"}}, r"\[Install\]"),
    ("container", {"container": {"image": "a.io/b:c"}, "service": {"Bad-Key": "x"}}, "invalid key"),
    ("container", {"container": ["image"]}, "must be a mapping"),
    ("kube", {"kube": {"publish_port": ["80:80"]}}, "needs yaml"),
    ("build", {"build": {"file": "Containerfile"}}, "needs image_tag"),
    ("image", {"image": {"arch": "arm64"}}, "needs image"),
    ("network", {"network": {"volume_name": "x"}}, "unknown key 'volume_name'"),
    ("volume", {"volume": {"options": {"o": "x"}}}, "not a mapping"),
    ("container", {"container": {"image": "a.io/b:c", "VolatileTmp": True}}, "deprecated"),
    ("daemon", {"container": {"image": "a.io/b:c"}}, "kind must be one of"),
]


@pytest.mark.parametrize("kind, options, message", BAD_OPTIONS)
def test_bad_options_are_refused(kind, options, message):
    with pytest.raises(keys.InvalidQuadlet, match=message):
        keys.render_unit(kind, options)


def test_enabled_false_refuses_an_install_section():
    with pytest.raises(keys.InvalidQuadlet, match="enabled: false"):
        keys.render_unit("container", {"container": {"image": "a.io/b:c"}, "install": {"wanted_by": "x.target"}}, enabled=False)


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "required"),
        ("../etc/passwd", "not a path"),
        ("a/b", "not a path"),
        ("..", "not a path"),
        ("web\nx", "control character"),
        ("web.container", "without its extension"),
        ("-web", "not a valid unit name"),
        ("web app", "not a valid unit name"),
        ("x" * 201, "not a valid unit name"),
    ],
)
def test_bad_names(name, message):
    with pytest.raises(keys.InvalidQuadlet, match=message):
        keys.validate_name(name, "container")


def test_template_and_dotted_names_are_fine():
    assert keys.validate_name("web@", "container") == "web@"
    assert keys.validate_name("my.app_1", "container") == "my.app_1"


# --- parsing --------------------------------------------------------------------------------------------------------


def test_parse_unit_follows_systemd_syntax():
    text = "# comment\n; also a comment\n[Container]\nImage = a.io/b:c\nExec=/bin/sh \\\n  -c true\n\n[Install]\nWantedBy=default.target\n"
    assert keys.parse_unit(text) == {
        "Container": [("Image", "a.io/b:c"), ("Exec", "/bin/sh  -c true")],
        "Install": [("WantedBy", "default.target")],
    }


@pytest.mark.parametrize(
    "text, message",
    [
        ("[Container]\nthis is not valid\n", "line 2 is not a key=value pair"),
        ("Image=a.io/b:c\n", "before any"),
    ],
)
def test_parse_unit_refuses_what_the_generator_refuses(text, message):
    with pytest.raises(keys.InvalidQuadlet, match=message):
        keys.parse_unit(text)


def test_check_content():
    sections = keys.check_content("container", "[Container]\nImage=a.io/b:c\nRemapUsers=keep-id\n")
    assert sections["Container"][0] == ("Image", "a.io/b:c")
    with pytest.raises(keys.InvalidQuadlet, match="unsupported key 'FooBar'"):
        keys.check_content("container", "[Container]\nImage=a.io/b:c\nFooBar=1\n")
    with pytest.raises(keys.InvalidQuadlet, match=r"needs a \[Pod\] section"):
        keys.check_content("pod", "[Container]\nImage=a.io/b:c\n")
    with pytest.raises(keys.InvalidQuadlet, match=r"has a \[Container\] section"):
        keys.check_content("pod", "[Pod]\n[Container]\nImage=a.io/b:c\n")
    with pytest.raises(keys.InvalidQuadlet, match="empty"):
        keys.check_content("container", "  \n")


# --- the generator's dry-run output (podman 5.4.2, as recorded in the lab notes) ----------------------------------

DRYRUN_STDOUT = """---app-network.service---
[X-Network]
Subnet=10.89.0.0/24

[Unit]
SourcePath=/tmp/u/app.network
RequiresMountsFor=%t/containers

[Service]
ExecStart=/usr/bin/podman network create --ignore --subnet 10.89.0.0/24 systemd-app
Type=oneshot
RemainAfterExit=yes

---web.service---
[X-Container]
Image=docker.io/library/nginx:latest

[Service]
ExecStart=/usr/bin/podman run --name web docker.io/library/nginx:latest
"""
DRYRUN_STDERR = (
    "quadlet-generator[11592]: Loading source unit file /tmp/u/app.network\n"
    "quadlet-generator[11592]: Loading source unit file /tmp/u/web.container\n"
    'Warning: web.container specifies the image "alpine" which not a fully qualified image name\n'
)


def test_parse_dryrun_splits_units_and_drops_loading_notices():
    result = quadlet.parse_dryrun(DRYRUN_STDOUT, DRYRUN_STDERR, 0)
    assert sorted(result["units"]) == ["app-network.service", "web.service"]
    assert result["units"]["app-network.service"].startswith("[X-Network]\nSubnet=10.89.0.0/24\n")
    assert result["units"]["web.service"].endswith("docker.io/library/nginx:latest\n")
    assert result["errors"] == [] and len(result["warnings"]) == 1
    assert quadlet.generator_verdict(result, "web.container", "web.service") is None


@pytest.mark.parametrize(
    "stderr, message",
    [
        (
            "quadlet-generator[7]: converting \"x.container\": unsupported key 'FooBar' in group 'Container' in /t/x.container\n",
            "converting \"x.container\": unsupported key 'FooBar' in group 'Container' in /t/x.container",
        ),
        (
            'quadlet-generator[7]: converting "x.container": no Image or Rootfs key specified\n',
            'converting "x.container": no Image or Rootfs key specified',
        ),
        (
            'converting "x.container": requested Quadlet unit app.network was not found\n',
            'converting "x.container": requested Quadlet unit app.network was not found',
        ),
    ],
)
def test_a_rejected_unit_carries_the_generators_message(stderr, message):
    result = quadlet.parse_dryrun("", stderr, 1)
    assert quadlet.generator_verdict(result, "x.container", "x.service") == message


def test_errors_about_other_units_do_not_hide_our_verdict():
    stderr = 'quadlet-generator[7]: converting "other.container": no Image or Rootfs key specified\n'
    result = quadlet.parse_dryrun(DRYRUN_STDOUT, stderr, 1)
    assert quadlet.generator_verdict(result, "web.container", "web.service") is None
    assert "other.container" in quadlet.generator_verdict(result, "gone.container", "gone.service")


def test_no_unit_and_no_message():
    result = quadlet.parse_dryrun("", "quadlet-generator[7]: Loading source unit file /t/x.contaner\n", 0)
    assert "produced no x.service" in quadlet.generator_verdict(result, "x.container", "x.service")


def test_generator_argv():
    assert quadlet.generator_argv("/usr/libexec/podman/quadlet", True) == ["/usr/libexec/podman/quadlet", "-dryrun", "-user"]
    assert quadlet.generator_argv("/usr/libexec/podman/quadlet", False) == ["/usr/libexec/podman/quadlet", "-dryrun"]


def test_parse_systemctl_show():
    state = instance.parse_systemctl_show("LoadState=loaded\nActiveState=active\nSubState=running\nNeedDaemonReload=no\n")
    assert state["ActiveState"] == "active" and instance.is_running(state)
    assert not instance.is_running({"ActiveState": "failed"}) and not instance.is_running(None)


# --- the plan ---------------------------------------------------------------------------------------------------------

LOADED_ACTIVE = {"LoadState": "loaded", "ActiveState": "active", "NeedDaemonReload": "no"}
LOADED_INACTIVE = {"LoadState": "loaded", "ActiveState": "inactive", "NeedDaemonReload": "no"}
NOT_FOUND = {"LoadState": "not-found", "ActiveState": "inactive", "NeedDaemonReload": "no"}


@pytest.mark.parametrize(
    "current, desired, state, started, restart, actions",
    [
        (None, "A\n", NOT_FOUND, True, True, ["write", "daemon-reload", "start"]),
        ("A\n", "B\n", LOADED_ACTIVE, True, True, ["write", "daemon-reload", "restart"]),
        ("A\n", "B\n", LOADED_ACTIVE, True, False, ["write", "daemon-reload"]),
        ("A\n", "B\n", LOADED_INACTIVE, True, True, ["write", "daemon-reload", "start"]),
        ("A\n", "B\n", LOADED_INACTIVE, False, True, ["write", "daemon-reload"]),
        ("A\n", "A\n", LOADED_ACTIVE, True, True, []),
        ("A\n", "A\n", LOADED_INACTIVE, True, True, ["start"]),
        ("A\n", "A\n", LOADED_ACTIVE, False, True, ["stop"]),
        ("A\n", "A\n", LOADED_INACTIVE, None, True, []),
        ("A\n", "A\n", NOT_FOUND, True, True, ["daemon-reload", "start"]),
        ("A\n", "A\n", dict(LOADED_ACTIVE, NeedDaemonReload="yes"), True, True, ["daemon-reload"]),
        ("A\n", None, LOADED_ACTIVE, None, True, ["stop", "remove", "daemon-reload"]),
        ("A\n", None, LOADED_INACTIVE, None, True, ["remove", "daemon-reload"]),
        (None, None, None, None, True, []),
        (None, "A\n", None, True, True, ["write", "daemon-reload", "start"]),
    ],
)
def test_plan(current, desired, state, started, restart, actions):
    plan = quadlet.plan_quadlet(current, desired, state, started, restart, path="/u/web.container")
    assert plan["actions"] == actions and plan["changed"] == bool(actions)


def test_plan_fixes_attributes_without_rewriting():
    plan = quadlet.plan_quadlet("A\n", "A\n", LOADED_ACTIVE, True, True, attributes_changed=True)
    assert plan["actions"] == ["attributes"] and plan["file_changed"] is False


def test_plan_diff_is_the_file():
    plan = quadlet.plan_quadlet(
        "[Container]\nImage=a\n", "[Container]\nImage=b\n", LOADED_ACTIVE, True, True, path="/u/w.container"
    )
    assert plan["diff"]["before_header"] == "/u/w.container"
    assert (plan["diff"]["before"], plan["diff"]["after"]) == ("[Container]\nImage=a\n", "[Container]\nImage=b\n")
    created = quadlet.plan_quadlet(None, "X=1\n", None, True, True, path="/u/w.container")
    assert created["diff"]["before"] == "" and created["diff"]["before_header"] == "/u/w.container (absent)"


def test_systemd_specifiers_pass_and_a_stray_percent_is_refused():
    """Quadlet copies values into ExecStart as written (podman 5.4 -dryrun: ``-v %h/data:/data --env FOO=a%hb``),
    where systemd expands its specifiers; an unknown one would make systemd refuse the service."""
    text = keys.render_unit(
        "container", {"container": {"image": "a.io/b:c", "volume": ["%h/data:/data"], "label": {"p": "100%%"}}}
    )
    assert "Volume=%h/data:/data\n" in text and "Label=p=100%%\n" in text
    with pytest.raises(keys.InvalidQuadlet, match="write %% for a literal %"):
        keys.render_unit("container", {"container": {"image": "a.io/b:c", "environment": {"CPU": "50%"}}})
    with pytest.raises(keys.InvalidQuadlet, match="starts no systemd specifier"):
        keys.check_content("container", "[Container]\nImage=a.io/b:c\nEnvironment=A=5%Z\n")
