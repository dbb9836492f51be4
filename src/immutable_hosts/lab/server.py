"""The lab's image server: ``<state>/server/`` over HTTP on port 8088, bound only to machine-side veth addresses.

One process serves every host. It listens on each address listed in ``<state>/run/server-addresses`` and re-reads
that file on SIGHUP (the CLI sends one after adding hosts), so it never binds a wildcard or a foreign network.
Run as ``python -m immutable_hosts.lab.server STATE_DIR``.
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import sys
import threading
import time
from pathlib import Path

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


class Listeners:
    def __init__(self, document_root: Path, log_file: Path) -> None:
        handler = type("Handler", (QuietHandler,), {"log_file": log_file})
        self.handler = functools.partial(handler, directory=str(document_root))
        self.servers: dict[str, LabHTTPServer] = {}

    def reconcile(self, wanted: set[str]) -> None:
        for address in sorted(set(self.servers) - wanted):
            self.servers.pop(address).shutdown()
        for address in sorted(wanted - set(self.servers)):
            try:
                server = LabHTTPServer((address, SERVER_PORT), self.handler)
            except OSError as err:
                print(f"cannot listen on {address}:{SERVER_PORT}: {err}", file=sys.stderr, flush=True)
                continue
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[address] = server

    def close(self) -> None:
        self.reconcile(set())


def read_addresses(path: Path) -> set[str]:
    return set(path.read_text().split()) if path.exists() else set()


def serve(state: LabState) -> None:
    state.server_dir.mkdir(parents=True, exist_ok=True)
    listeners = Listeners(state.server_dir, state.run_dir / "server-access.log")
    flags = {"reload": True, "stop": False}
    signal.signal(signal.SIGHUP, lambda *_: flags.update(reload=True))
    signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
    pid_file(state).write_text(f"{os.getpid()}\n")
    while not flags["stop"]:
        if flags["reload"]:
            flags["reload"] = False
            listeners.reconcile(read_addresses(addresses_file(state)))
            (state.run_dir / "server-ready").write_text(" ".join(sorted(listeners.servers)) + "\n")
        time.sleep(0.1)
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
    state.server = None
    for name in ("server.pid", "server-ready", "server-addresses"):
        (state.run_dir / name).unlink(missing_ok=True)
    state.save()


def main(argv: list[str]) -> int:
    serve(LabState(Path(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
