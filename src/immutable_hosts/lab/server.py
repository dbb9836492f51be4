"""The lab's server process: the image server, the registry's two instances and the relays to them.

* Image server: ``<state>/server/`` over HTTP on port 8088, and over TLS on the port the registry spec's ``https``
  names (8443, the lab's COPR hub ``https://copr.lab:8443``), with the registry's certificate.
* Registry (``registry.py``): when ``<state>/run/registry.json`` exists, the server starts the two docker-registry
  instances it names (each on a unix socket), stops them when it stops, and relays TCP to them: from each lab
  address on the ports the spec gives (443 and 5000 to ``open``, 5001 to ``auth``), and from 127.0.0.1 on ports it
  picks for the machine-side tools (written to ``<state>/run/registry-ports.json``).

One process serves every host. It listens on each address listed in ``<state>/run/server-addresses`` and re-reads
that file (and the registry spec) on SIGHUP (the CLI sends one after adding hosts), so it never binds a wildcard or a
foreign network. Run as ``python -m immutable_hosts.lab.server STATE_DIR``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import selectors
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from immutable_hosts.lab.state import SERVER_PORT, LabState, ProcessRef


class LabHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 50 hosts booting and pulling at once overflow the default backlog of 5


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    log_file: Path | None = None

    def log_message(self, format: str, *args: object) -> None:
        if self.log_file is not None:
            with self.log_file.open("a") as log:
                log.write(f"{self.client_address[0]} {format % args}\n")


def addresses_file(state: LabState) -> Path:
    return state.run_dir / "server-addresses"


def pid_file(state: LabState) -> Path:
    return state.run_dir / "server.pid"


class Relay(socketserver.ThreadingTCPServer):
    """Accepts TCP on one address and port and pipes each connection to a unix socket (a registry instance)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], target: str) -> None:
        self.target = target
        super().__init__(address, RelayHandler)


class RelayHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, Relay)
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.target)
        except OSError:
            upstream.close()
            return
        pipe(self.request, upstream)


def pipe(client: socket.socket, upstream: socket.socket, idle_timeout: float = 300.0) -> None:
    """Copy bytes both ways until both sides have closed their sending half (or one side fails, or nothing moves
    for ``idle_timeout`` seconds)."""
    peers = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        while selector.get_map():
            events = selector.select(timeout=idle_timeout)
            if not events:
                break
            for key, _ in events:
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    try:
                        peers[sock].sendall(data)
                    except OSError:
                        upstream.close()
                        return
                    continue
                selector.unregister(sock)
                with contextlib.suppress(OSError):
                    peers[sock].shutdown(socket.SHUT_WR)
    upstream.close()


class Registry:
    """The registry instances of ``<state>/run/registry.json`` (started once) and their loopback relays."""

    def __init__(self, state: LabState) -> None:
        self.state = state
        self.spec: dict[str, Any] = {}
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.loopback: dict[str, Relay] = {}

    def reconcile(self) -> None:
        path = self.state.run_dir / "registry.json"
        self.spec = json.loads(path.read_text()) if path.exists() else {}
        for name, instance in self.spec.get("instances", {}).items():
            child = self.children.get(name)
            if child is None or child.poll() is not None:
                Path(instance["socket"]).unlink(missing_ok=True)
                with open(instance["log"], "ab") as log:
                    self.children[name] = subprocess.Popen(
                        instance["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                    )
            if name not in self.loopback:
                relay = Relay(("127.0.0.1", 0), instance["socket"])
                threading.Thread(target=relay.serve_forever, daemon=True).start()
                self.loopback[name] = relay
        children = {name: ProcessRef.of(child.pid).to_json() for name, child in self.children.items() if child.poll() is None}
        (self.state.run_dir / "registry-children.json").write_text(json.dumps(children) + "\n")
        ports = {name: relay.server_address[1] for name, relay in self.loopback.items()}
        (self.state.run_dir / "registry-ports.json").write_text(json.dumps(ports) + "\n")

    def relays(self) -> dict[int, str]:
        """Lab-address port -> unix socket."""
        instances = self.spec.get("instances", {})
        return {int(port): instances[name]["socket"] for port, name in self.spec.get("relays", {}).items() if name in instances}

    def close(self) -> None:
        shutdown_all(list(self.loopback.values()))
        self.loopback.clear()
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.children.clear()
        (self.state.run_dir / "registry-ports.json").unlink(missing_ok=True)


def shutdown_all(servers: list[socketserver.BaseServer]) -> None:
    """Stop servers together: each ``shutdown`` waits up to a poll interval (0.5 s) for its loop, and a lab with 50
    hosts has 200 of them, which one at a time would outlast the 10 s ``stop`` gives the process."""
    threads = [threading.Thread(target=server.shutdown, daemon=True) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for server in servers:
        server.server_close()


class LabHTTPSServer(LabHTTPServer):
    """The image server's files over TLS: each accepted connection is wrapped (the handshake in its own thread)."""

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def tls_context(spec: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(spec["certificate"], spec["key"])
    return context


class Listeners:
    def __init__(self, document_root: Path, log_file: Path) -> None:
        handler = type("Handler", (QuietHandler,), {"log_file": log_file})
        self.handler = functools.partial(handler, directory=str(document_root))
        self.servers: dict[str, LabHTTPServer] = {}
        self.tls_servers: dict[str, LabHTTPSServer] = {}
        self.relays: dict[tuple[str, int], Relay] = {}

    def reconcile(self, wanted: set[str], relays: dict[int, str] | None = None, https: dict[str, Any] | None = None) -> None:
        shutdown_all([self.servers.pop(address) for address in sorted(set(self.servers) - wanted)])
        for address in sorted(wanted - set(self.servers)):
            try:
                server = LabHTTPServer((address, SERVER_PORT), self.handler)
            except OSError as err:
                print(f"cannot listen on {address}:{SERVER_PORT}: {err}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[address] = server
        wanted_tls = wanted if https else set()
        shutdown_all([self.tls_servers.pop(address) for address in sorted(set(self.tls_servers) - wanted_tls)])
        for address in sorted(wanted_tls - set(self.tls_servers)):
            try:
                tls = LabHTTPSServer((address, int(https["port"])), self.handler, tls_context(https))
            except (OSError, ssl.SSLError) as err:
                print(f"cannot serve TLS on {address}:{https['port']}: {err}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=tls.serve_forever, daemon=True).start()
            self.tls_servers[address] = tls
        wanted_relays = {(address, port): target for address in wanted for port, target in (relays or {}).items()}
        shutdown_all([self.relays.pop(key) for key in sorted(set(self.relays) - set(wanted_relays))])
        for key in sorted(set(wanted_relays) - set(self.relays)):
            try:
                relay = Relay(key, wanted_relays[key])
            except OSError as err:
                print(f"cannot listen on {key[0]}:{key[1]}: {err}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=relay.serve_forever, daemon=True).start()
            self.relays[key] = relay

    def close(self) -> None:
        self.reconcile(set())


def read_addresses(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def serve(state: LabState) -> None:
    state.server_dir.mkdir(parents=True, exist_ok=True)
    listeners = Listeners(state.server_dir, state.run_dir / "server-access.log")
    registry = Registry(state)
    flags = {"reload": True, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: flags.update(reload=True))
    signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
    pid_file(state).write_text(f"{os.getpid()}\n")
    while not flags["stop"]:
        if flags["reload"]:
            flags["reload"] = False
            registry.reconcile()
            listeners.reconcile(read_addresses(addresses_file(state)), registry.relays(), registry.spec.get("https"))
            (state.run_dir / "server-ready").write_text(" ".join(sorted(listeners.servers)) + "\n")
        time.sleep(0.1)
    registry.close()
    listeners.close()


# --- control from the CLI ----------------------------------------------------------------------------


def running(state: LabState) -> bool:
    return state.server is not None and state.server.alive()


def update(state: LabState, addresses: list[str], python: str, env: dict[str, str]) -> None:
    """Make the server listen on exactly ``addresses``; start it if needed. Caller holds the lab lock."""
    state.run_dir.mkdir(parents=True, exist_ok=True)
    addresses_file(state).write_text("".join(f"{a}\n" for a in sorted(addresses)))
    ready = state.run_dir / "server-ready"
    ready.unlink(missing_ok=True)
    if running(state):
        assert state.server is not None
        os.kill(state.server.pid, signal.SIGHUP)
    else:
        start(state, python, env)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if ready.exists() and set(ready.read_text().split()) == set(addresses):
            return
        time.sleep(0.05)
    raise RuntimeError(f"image server did not listen on {addresses}; see {state.run_dir / 'server.log'}")


def start(state: LabState, python: str, env: dict[str, str]) -> None:
    import subprocess

    pid_file(state).unlink(missing_ok=True)
    log = (state.run_dir / "server.log").open("a")
    # setsid --fork: the server is re-parented at once and never lingers as our zombie.
    subprocess.run(
        ["setsid", "--fork", python, "-m", "immutable_hosts.lab.server", str(state.root)],
        check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not pid_file(state).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("image server did not start")
        time.sleep(0.05)
    state.server = ProcessRef.of(int(pid_file(state).read_text()))
    state.save()


def stop(state: LabState) -> None:
    if running(state):
        assert state.server is not None
        os.kill(state.server.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while state.server.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if state.server.alive():
            os.kill(state.server.pid, signal.SIGKILL)
    stop_orphans(state.run_dir / "registry-children.json")
    state.server = None
    for name in ("server.pid", "server-ready", "server-addresses", "registry-ports.json", "registry-children.json"):
        (state.run_dir / name).unlink(missing_ok=True)
    state.save()


def stop_orphans(record: Path) -> None:
    """The registry instances the server started, if the server could not stop them (it was killed): each is ended
    only when its PID still has the start time recorded for it."""
    if not record.exists():
        return
    try:
        children = [ProcessRef.from_json(data) for data in json.loads(record.read_text()).values()]
    except (ValueError, KeyError, TypeError):
        return
    alive = [child for child in children if child is not None and child.alive()]
    for child in alive:
        os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(child.alive() for child in alive) and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in alive:
        if child.alive():
            os.kill(child.pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    serve(LabState(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
