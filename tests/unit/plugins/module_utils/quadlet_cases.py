"""One unit of every Quadlet kind, as module options; the golden files in tests/unit/fixtures/quadlet are their
renderings.  The units refer to each other (web.container uses app.network and web-data.volume), so the whole set
also passes the real generator together."""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "quadlet"

CASES = {
    ("web", "container"): {
        "container": {
            "image": "localhost/bb:latest",
            "exec": ["/bin/sleep", "1000"],
            "network": "app.network",
            "volume": ["web-data.volume:/data", "%h/site:/srv:Z"],
            "publish_port": ["8080:80", "8443:443"],
            "environment": {"FOO": "bar", "GREETING": "hello world"},
            "label": {"app": "web"},
            "podman_args": ["--stop-timeout=1"],
            "auto_update": "registry",
            "read_only": True,
            "secret": ["dbpass,type=env,target=DB_PASS"],
        },
        "unit": {"description": "Web server", "after": "network-online.target"},
        "service": {"restart": "always", "timeout_start_sec": 300},
        "install": {"wanted_by": "default.target"},
    },
    ("app", "pod"): {
        "pod": {"pod_name": "app", "publish_port": ["8081:80"], "network": "app.network", "volume": ["web-data.volume:/shared"]}
    },
    ("web-data", "volume"): {"volume": {"volume_name": "web-data", "label": {"app": "web"}, "copy": False}},
    ("app", "network"): {
        "network": {
            "subnet": "10.89.0.0/24",
            "gateway": "10.89.0.1",
            "options": {"mtu": 1400},
            "internal": False,
            "dns": ["9.9.9.9"],
        }
    },
    ("kube-app", "kube"): {
        "kube": {
            "yaml": "/etc/containers/kube/app.yaml",
            "publish_port": ["8082:80"],
            "config_map": ["/etc/containers/kube/cm.yaml"],
        }
    },
    ("fedora", "image"): {"image": {"image": "quay.io/fedora/fedora:41", "arch": "aarch64", "tls_verify": True}},
    ("appimg", "build"): {
        "build": {
            "image_tag": "localhost/app:latest",
            "file": "/srv/app/Containerfile",
            "set_working_directory": "unit",
            "environment": {"BUILD": "1"},
        }
    },
}

SERVICES = {
    ("web", "container"): "web.service",
    ("app", "pod"): "app-pod.service",
    ("web-data", "volume"): "web-data-volume.service",
    ("app", "network"): "app-network.service",
    ("kube-app", "kube"): "kube-app.service",
    ("fedora", "image"): "fedora-image.service",
    ("appimg", "build"): "appimg-build.service",
}


def golden(name: str, kind: str) -> str:
    return (GOLDEN / ("%s.%s" % (name, kind))).read_text()


def split_words(value: str) -> list:
    """Words of a value as systemd splits them: blanks separate, quotes group, a backslash escapes one character.
    The tests' oracle for what the modules render (quote_word)."""
    words_found, word, quote, escaped, in_word = [], [], None, False, False
    for char in value:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\" and quote != "'":
            escaped, in_word = True, True
        elif quote:
            if char == quote:
                quote = None
            else:
                word.append(char)
        elif char in "\"'":
            quote, in_word = char, True
        elif char.isspace():
            if in_word:
                words_found.append("".join(word))
                word, in_word = [], False
        else:
            word.append(char)
            in_word = True
    if quote or escaped:
        raise ValueError("unbalanced quotes or a trailing backslash in %r" % value)
    if in_word:
        words_found.append("".join(word))
    return words_found
