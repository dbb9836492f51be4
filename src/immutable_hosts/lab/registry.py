"""The lab's OCI registry: Debian's docker-registry (distribution 2.8) over TLS, with signed multi-arch images.

Two instances, because distribution's authentication covers a whole instance: ``open`` (anonymous) and ``auth``
(htpasswd; distribution accepts bcrypt entries only). Each listens on a unix socket in ``<state>/run/`` and is
started and stopped by the lab's server process (``server.py``), which relays TCP to them from lab addresses only:

* on every machine-side veth address (each host's ``/etc/hosts`` maps ``registry.lab`` and ``quay.io`` there):
  port 443 (``quay.io``) and 5000 (``registry.lab:5000``) reach ``open``, port 5001 (``registry.lab:5001``) reaches
  ``auth``; so the lab's images keep the names hosts use for real (``quay.io/fedora/fedora-silverblue:42``) and
  the private one is ``registry.lab:5001/private/silverblue:42``;
* on 127.0.0.1, on ports the server picks and writes to ``<state>/run/registry-ports.json``, for the machine-side
  tools that push and sign.

TLS: a lab CA (``<state>/registry/ca.crt``) signs one server certificate for ``registry.lab``, ``quay.io`` and
127.0.0.1; every host trusts the CA (``/etc/containers/certs.d/NAME/ca.crt`` and the system store).

The tools are Debian trixie's, from the lab image's tree (its packages list them): ``docker-registry``, ``skopeo``
(pushes with ``copy --all``, so the image index keeps its bytes), ``cosign`` (signs recursively, the index and each
per-arch manifest, without a transparency log) and ``htpasswd``. The machine may be older than trixie, so they run
with the tree's own dynamic loader and libraries (:class:`Tools`); nothing is installed on the machine.

Signing keys (cosign key pairs, ``<state>/registry/keys/``): ``fedora`` signs the lab's Fedora images, ``other``
signs ``quay.io/fedora-lab/other-key:42`` (a host that trusts ``fedora`` must refuse it); ``quay.io/fedora-lab/
unsigned:42`` has no signature. The public keys are served at ``http://images.lab:8088/keys/NAME.pub``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from immutable_hosts.lab.state import LabState, write_whole

REGISTRY_NAME = "registry.lab"
# The lab's COPR hub: the image server's files over TLS on its own port (https://copr.lab:8443), with the registry's
# certificate (which names it too); hub and port as ostree_content.COPR_HUB names them.
COPR_NAME = "copr.lab"
COPR_PORT = 8443
# Names the hosts resolve to the lab registry and the COPR hub, and the ports they dial there -> instance.
HOST_NAMES = (REGISTRY_NAME, "quay.io", COPR_NAME)
RELAY_PORTS = {443: "open", 5000: "open", 5001: "auth"}
INSTANCES = ("open", "auth")
# The registry name each instance is reached by from a host (certs.d directories, credentials).
HOST_REGISTRIES = {"quay.io": "open", f"{REGISTRY_NAME}:5000": "open", f"{REGISTRY_NAME}:5001": "auth"}
AUTH_REGISTRY = f"{REGISTRY_NAME}:5001"
AUTH_USER = "lab"
KEY_NAMES = ("fedora", "other")
TOOL_PACKAGES = ["docker-registry", "skopeo", "cosign", "apache2-utils"]
# In the lab image: skopeo is what the hosts' simulators pull through (and what Fedora Atomic desktops ship); the
# others are there for the machine, which runs them from the image's tree.
IMAGE_PACKAGES = [*TOOL_PACKAGES, "ca-certificates"]
READY_TIMEOUT = 15.0


class RegistryError(RuntimeError):
    """A registry step failed; the message says which and shows the tool's output."""


def registry_dir(state: LabState) -> Path:
    return state.root / "registry"


def spec_file(state: LabState) -> Path:
    """What the server process starts and relays (written by :func:`write_spec`)."""
    return state.run_dir / "registry.json"


def ports_file(state: LabState) -> Path:
    """instance -> 127.0.0.1 port of the server's loopback relay (written by the server)."""
    return state.run_dir / "registry-ports.json"


def socket_path(state: LabState, instance: str) -> Path:
    return state.run_dir / f"registry-{instance}.sock"


# --- tools from the lab image ----------------------------------------------------------------------------------


class Tools:
    """argv prefixes for the trixie tools in the lab image's tree, run with the tree's loader and libraries."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.loader = rootfs / "lib64" / "ld-linux-x86-64.so.2"
        self.library_path = ":".join(str(rootfs / d) for d in ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"))

    def argv(self, tool: str) -> list[str]:
        binary = self.rootfs / "usr" / "bin" / tool
        if not binary.is_file():
            raise RegistryError(f"lab registry: {binary} is missing; the lab image needs {' '.join(TOOL_PACKAGES)}")
        return [str(self.loader), "--library-path", self.library_path, str(binary)]

    def run(self, tool: str, *args: str, env: Mapping[str, str] | None = None, what: str = "", cwd: Path | None = None) -> str:
        argv = [*self.argv(tool), *args]
        done = subprocess.run(argv, capture_output=True, text=True, env={**clean_env(), **(env or {})}, cwd=cwd, check=False)
        if done.returncode != 0:
            raise RegistryError(
                f"lab registry: {what or tool} failed (rc={done.returncode}): {(done.stderr or done.stdout).strip()}"
            )
        return done.stdout


def clean_env() -> dict[str, str]:
    """The tools' environment: C locale, no proxies, nothing of the caller's container configuration."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "TMPDIR")}
    return {**keep, "LC_ALL": "C", "LANG": "C"}


# --- key material and configuration ---------------------------------------------------------------------------


def openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RegistryError(f"lab registry: openssl {args[0]} failed: {done.stderr.strip()}")


def ensure_material(state: LabState, tools: Tools) -> None:
    """CA, server certificate, htpasswd and credentials, cosign key pairs, instance configurations; idempotent."""
    base = registry_dir(state)
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_key, ca_crt = base / "ca.key", base / "ca.crt"
    if not (ca_key.exists() and ca_crt.exists()):
        openssl(
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "3650", "-subj", "/CN=Immutable Hosts Lab Registry CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
        for stale in ("server.key", "server.crt"):
            (base / stale).unlink(missing_ok=True)
    server_key, server_crt = base / "server.key", base / "server.crt"
    names = ",".join(f"DNS:{n}" for n in HOST_NAMES)
    names_file = base / "server.names"
    if not (server_key.exists() and server_crt.exists() and names_file.exists() and names_file.read_text() == names):
        csr, ext = base / "server.csr", base / "server.ext"
        openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(server_key), "-out", str(csr), "-subj", f"/CN={REGISTRY_NAME}",
        )  # fmt: skip
        ext.write_text(
            f"subjectAltName={names},IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(server_crt), "-days", "825", "-extfile", str(ext),
        )  # fmt: skip
        csr.unlink()
        ext.unlink()
        write_whole(names_file, names)
    credentials = base / "credentials.json"
    if not credentials.exists():
        password = secrets.token_hex(18)  # never starts with "-", which a tool would read as an option
        entry = tools.run("htpasswd", "-nbB", "-C", "5", AUTH_USER, password, what="htpasswd").strip()
        write_whole(base / "htpasswd", entry + "\n")
        write_whole(credentials, json.dumps({"registry": AUTH_REGISTRY, "username": AUTH_USER, "password": password}) + "\n")
        os.chmod(credentials, 0o600)
    keys = base / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    passphrase = keys / "passphrase"
    if not passphrase.exists():
        write_whole(passphrase, secrets.token_urlsafe(18) + "\n")
    for name in KEY_NAMES:
        if not ((keys / f"{name}.key").exists() and (keys / f"{name}.pub").exists()):
            for stale in (f"{name}.key", f"{name}.pub"):
                (keys / stale).unlink(missing_ok=True)
            tools.run(
                "cosign",
                "generate-key-pair",
                "--output-key-prefix",
                name,
                env=cosign_env(state),
                cwd=keys,
                what="cosign generate-key-pair",
            )
    for instance in INSTANCES:
        write_whole(base / f"{instance}.json", json.dumps(instance_config(state, instance), indent=2) + "\n")


def cosign_env(state: LabState) -> dict[str, str]:
    base = registry_dir(state)
    home = base / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    password = (base / "keys" / "passphrase").read_text().strip()
    return {"HOME": str(home), "COSIGN_PASSWORD": password, "SSL_CERT_FILE": str(base / "ca.crt")}


def credentials(state: LabState) -> dict[str, str]:
    """{registry, username, password} of the authenticated instance."""
    return json.loads((registry_dir(state) / "credentials.json").read_text())


def instance_config(state: LabState, instance: str) -> dict[str, Any]:
    """distribution's configuration (JSON is YAML) for one instance: TLS on a unix socket, its own storage."""
    base = registry_dir(state)
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}, "fields": {"service": f"lab-registry-{instance}"}},
        "storage": {"filesystem": {"rootdirectory": str(base / "data" / instance)}, "delete": {"enabled": True}},
        "http": {
            "net": "unix",
            "addr": str(socket_path(state, instance)),
            "secret": instance_secret(base, instance),
            "tls": {"certificate": str(base / "server.crt"), "key": str(base / "server.key")},
        },
    }
    if instance == "auth":
        config["auth"] = {"htpasswd": {"realm": "lab-registry", "path": str(base / "htpasswd")}}
    return config


def instance_secret(base: Path, instance: str) -> str:
    path = base / f"{instance}.secret"
    if not path.exists():
        write_whole(path, secrets.token_hex(16) + "\n")
    return path.read_text().strip()


def write_spec(state: LabState, tools: Tools) -> dict[str, Any]:
    """What the server process runs: the two instances (argv, socket) and the TCP relays."""
    base = registry_dir(state)
    spec = {
        "instances": {
            name: {
                "argv": [*tools.argv("docker-registry"), "serve", str(base / f"{name}.json")],
                "socket": str(socket_path(state, name)),
                "log": str(state.run_dir / f"registry-{name}.log"),
            }
            for name in INSTANCES
        },
        "relays": {str(port): name for port, name in RELAY_PORTS.items()},
        "https": {"port": COPR_PORT, "certificate": str(base / "server.crt"), "key": str(base / "server.key")},
    }
    state.run_dir.mkdir(parents=True, exist_ok=True)
    write_whole(spec_file(state), json.dumps(spec, indent=2) + "\n")
    return spec


def loopback_ports(state: LabState, timeout: float = READY_TIMEOUT) -> dict[str, int]:
    """instance -> 127.0.0.1 port, once the server relays to both instances and each answers ``GET /v2/``."""
    deadline = time.monotonic() + timeout
    last = "the server wrote no registry-ports.json"
    while time.monotonic() < deadline:
        path = ports_file(state)
        if path.exists():
            ports = {k: int(v) for k, v in json.loads(path.read_text()).items()}
            problems = [f"{name}: {why}" for name, why in ((n, probe(state, ports[n])) for n in INSTANCES if n in ports) if why]
            if set(ports) >= set(INSTANCES) and not problems:
                return ports
            last = "; ".join(problems) or "instances missing"
        time.sleep(0.1)
    raise RegistryError(f"lab registry: not ready after {timeout:.0f}s ({last}); see {state.run_dir}/registry-*.log")


def probe(state: LabState, port: int) -> str:
    """'' when the instance behind ``port`` answers TLS ``GET /v2/`` (200, or 401 for ``auth``), else why not."""
    import http.client
    import ssl

    context = ssl.create_default_context(cafile=str(registry_dir(state) / "ca.crt"))
    try:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=2)
        connection.request("GET", "/v2/")
        status = connection.getresponse().status
        connection.close()
    except OSError as exc:
        return str(exc)
    return "" if status in (200, 401) else f"HTTP {status}"


# --- pushing and signing ----------------------------------------------------------------------------------------


def repository_of(name: str) -> tuple[str, str, str]:
    """``quay.io/fedora/fedora-silverblue:42`` -> (instance ``open``, repository ``fedora/fedora-silverblue``, tag)."""
    host, _, rest = name.partition("/")
    repository, _, tag = rest.rpartition(":")
    instance = HOST_REGISTRIES.get(host)
    if instance is None or not repository or not tag:
        raise RegistryError(f"lab registry: {name!r} is not an image of the lab registry ({', '.join(HOST_REGISTRIES)})")
    return instance, repository, tag


def push(state: LabState, tools: Tools, layout: Path, layout_ref: str, name: str, sign_with: str | None) -> str:
    """Push the image index ``layout_ref`` of the OCI layout to ``name`` (``copy --all``: every arch, the index
    bytes unchanged), then sign the index and each per-arch manifest with key ``sign_with`` (None: unsigned).
    Returns the index digest."""
    instance, repository, tag = repository_of(name)
    port = loopback_ports(state)[instance]
    base = registry_dir(state)
    certs = base / "certs.d"
    certs.mkdir(exist_ok=True)
    (certs / "ca.crt").write_bytes((base / "ca.crt").read_bytes())
    policy = base / "push-policy.json"
    write_whole(policy, json.dumps({"default": [{"type": "insecureAcceptAnything"}]}) + "\n")
    registries_conf = base / "registries.conf"
    write_whole(registries_conf, "")
    target = f"127.0.0.1:{port}/{repository}"
    creds = []
    cosign_creds = []
    if instance == "auth":
        c = credentials(state)
        creds = ["--dest-creds", f"{c['username']}:{c['password']}"]
        cosign_creds = [f"--registry-username={c['username']}", f"--registry-password={c['password']}"]
    env = {
        "HOME": str(base / "home"),
        "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
        "REGISTRY_AUTH_FILE": str(base / "no-auth.json"),
    }
    digest_file = base / "home" / "pushed-digest"
    digest_file.parent.mkdir(mode=0o700, exist_ok=True)
    tools.run(
        "skopeo", "--policy", str(policy), "copy", "--all", "--quiet", "--dest-cert-dir", str(certs),
        "--digestfile", str(digest_file), *creds, f"oci:{layout}:{layout_ref}", f"docker://{target}:{tag}",
        env=env, what=f"skopeo copy {name}",
    )  # fmt: skip
    digest = digest_file.read_text().strip()
    if sign_with is not None:
        identity = name.rpartition(":")[0]
        tools.run(
            "cosign", "sign", "--key", str(base / "keys" / f"{sign_with}.key"), "--tlog-upload=false", "--recursive",
            "--registry-cacert", str(base / "ca.crt"), "--sign-container-identity", identity, *cosign_creds,
            f"{target}@{digest}",
            env={**cosign_env(state)}, what=f"cosign sign {name}",
        )  # fmt: skip
    return digest


def host_ca(state: LabState) -> bytes:
    return (registry_dir(state) / "ca.crt").read_bytes()


def host_files(state: LabState) -> dict[str, bytes]:
    """Files a host needs to trust the lab registry: the CA for each registry name (certs.d) and the system store."""
    ca = host_ca(state)
    files = {f"etc/containers/certs.d/{name}/ca.crt": ca for name in HOST_REGISTRIES}
    files["usr/local/share/ca-certificates/immutable-hosts-lab.crt"] = ca
    return files


def describe(state: LabState, running: bool) -> dict[str, Any]:
    """For ``lab status``: the registry names hosts use, whether it serves, where its CA is."""
    return {
        "running": running,
        "names": sorted(HOST_REGISTRIES),
        "ca": str(registry_dir(state) / "ca.crt"),
        "keys": {name: str(path) for name, path in public_keys(state).items()},
    }


def public_keys(state: LabState) -> dict[str, Path]:
    return {name: registry_dir(state) / "keys" / f"{name}.pub" for name in KEY_NAMES}


def pushed_file(state: LabState) -> Path:
    return registry_dir(state) / "pushed.json"


def publish_all(state: LabState, tools: Tools, images: Mapping[str, Mapping[str, Any]], layout: Path, report: Any) -> list[str]:
    """Push (and sign) every image of the catalogue whose index the registry does not hold yet; returns their names."""
    path = pushed_file(state)
    pushed = json.loads(path.read_text()) if path.exists() else {}
    done = []
    for name, entry in sorted(images.items()):
        if pushed.get(name) == entry["index-digest"]:
            continue
        report(name)
        digest = push(state, tools, layout, entry["layout-ref"], name, entry.get("signed-by"))
        if digest != entry["index-digest"]:
            raise RegistryError(f"lab registry: pushed {name} as {digest}, but its index is {entry['index-digest']}")
        pushed[name] = digest
        write_whole(path, json.dumps(pushed, indent=2, sort_keys=True) + "\n")
        done.append(name)
    return done


def serve_public_keys(state: LabState) -> None:
    """The lab keys' public halves at ``http://images.lab:8088/keys/NAME.pub`` (where a project publishes its key)."""
    target = state.server_dir / "keys"
    target.mkdir(parents=True, exist_ok=True)
    for name, path in public_keys(state).items():
        (target / f"{name}.pub").write_bytes(path.read_bytes())
