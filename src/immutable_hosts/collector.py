"""``immutable-hosts collector``: receives the drift reports hosts in pull mode send, one file per host.

Hosts send ``PUT /reports/NAME`` with ``Authorization: Bearer TOKEN`` and the report as the body (what the pull role's
program does after every run). A report is stored as ``DIR/NAME.json`` (written whole, then renamed into place),
where ``immutable-hosts drift merge DIR`` reads it. Refused, with a status and a line saying why: a wrong or missing
token (401), a name that is not a host name (400), a body without a length (411), larger than ``--max-bytes`` (413),
or that is not a drift report of that one host (400).
"""

from __future__ import annotations

import argparse
import hmac
import http.server
import json
import os
import re
import signal
import ssl
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any

from immutable_hosts.drift import FORMAT
from immutable_hosts.files import write_durably

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62}))*\Z")
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
READ_TIMEOUT = 30.0


class CollectorError(Exception):
    """A setting the collector cannot start with; the message says why."""


def is_host_name(name: str) -> bool:
    return bool(NAME_RE.match(name)) and len(name) <= 253


def read_token(path: Path) -> str:
    """The token from a file only its owner may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise CollectorError(f"--token-file {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as handle:
        if stat.S_IMODE(os.fstat(handle.fileno()).st_mode) & 0o077:
            raise CollectorError(f"--token-file {path} can be read by others than its owner; chmod 600 it")
        token = handle.read().strip()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise CollectorError(f"--token-file {path} holds no token: one line of at least 16 characters, no spaces")
    return token


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``."""
    host, sep, port = value.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CollectorError(f"--listen {value!r}: give ADDRESS:PORT (127.0.0.1:8089, [::1]:8089)")
    return host, int(port)


def check_report(name: str, body: bytes) -> dict[str, Any]:
    """The report, when the body is a drift report of host ``name`` alone; ValueError saying why otherwise."""
    try:
        report = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(report, dict) or report.get("format") != FORMAT:
        raise ValueError(f"the body is not a drift report ({FORMAT})")
    hosts = report.get("hosts")
    if not isinstance(hosts, dict) or list(hosts) != [name]:
        found = ", ".join(map(str, hosts)) if isinstance(hosts, dict) else "none"
        raise ValueError(f"a report sent as {name} holds that host alone (it holds: {found or 'none'})")
    return report


class Collector:
    def __init__(self, directory: Path, token: str, max_bytes: int, log: Any = sys.stderr) -> None:
        self.directory = directory
        self.token = token
        self.max_bytes = max_bytes
        self.log = log
        self.lock = threading.Lock()

    def say(self, client: str, method: str, path: str, status: int, detail: str) -> None:
        with self.lock:
            print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {client} {method} {path} {status} {detail}", file=self.log, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "immutable-hosts-collector"
    sys_version = ""
    timeout = READ_TIMEOUT
    collector: Collector

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request, from answer()

    def answer(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        body = (json.dumps({"status": status, "detail": detail}) + "\n").encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.collector.say(self.client_address[0], self.command, self.path[:200], status, detail)

    def refuse_method(self) -> None:
        self.close_connection = True
        self.answer(405, "only PUT /reports/NAME", {"Allow": "PUT"})

    do_GET = do_POST = do_DELETE = do_HEAD = do_PATCH = refuse_method

    def authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.collector.token.encode())

    def do_PUT(self) -> None:
        self.close_connection = True
        prefix = "/reports/"
        if not self.path.startswith(prefix):
            return self.answer(404, "reports are sent to /reports/NAME")
        if not self.authorized():
            return self.answer(401, "a valid bearer token is needed", {"WWW-Authenticate": 'Bearer realm="reports"'})
        name = self.path[len(prefix) :]
        if not is_host_name(name):
            return self.answer(400, "the name is not a host name (letters, digits, - and _ in dot-separated labels)")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self.answer(411, "a Content-Length is needed")
        if int(length) > self.collector.max_bytes:
            return self.answer(413, f"a report is at most {self.collector.max_bytes} bytes; this one is {length}")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            return self.answer(400, "the body ended before its Content-Length")
        try:
            check_report(name, body)
        except ValueError as exc:
            return self.answer(400, str(exc))
        write_durably(self.collector.directory / f"{name}.json", body.decode("utf-8"), 0o640)
        return self.answer(201, f"stored {name}.json ({len(body)} bytes)")


def serve(args: argparse.Namespace) -> int:
    try:
        host, port = parse_listen(args.listen)
        token = read_token(Path(args.token_file))
        directory = Path(args.dir)
        if not directory.is_dir():
            raise CollectorError(f"--dir {directory} is not a directory")
        if bool(args.tls_cert) != bool(args.tls_key):
            raise CollectorError("--tls-cert and --tls-key go together")
        if args.max_bytes < 1024:
            raise CollectorError("--max-bytes is at least 1024")
    except CollectorError as exc:
        print(f"immutable-hosts collector: {exc}", file=sys.stderr)
        return 1
    collector = Collector(directory, token, args.max_bytes)
    handler = type("BoundHandler", (Handler,), {"collector": collector})
    server_class = http.server.ThreadingHTTPServer
    if ":" in host:
        server_class = type("ServerV6", (server_class,), {"address_family": __import__("socket").AF_INET6})
    try:
        httpd = server_class((host, port), handler)
    except OSError as exc:
        print(f"immutable-hosts collector: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 1
    httpd.daemon_threads = True
    scheme = "http"
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown, daemon=True).start())
    print(f"immutable-hosts collector: {scheme}://{args.listen}/reports/NAME -> {directory}", file=sys.stderr, flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "collector",
        help="receive the drift reports of hosts in pull mode",
        description=__doc__.split("\n\n")[0].replace("``", "")
        + " Each report is written to DIR/NAME.json; `immutable-hosts drift merge DIR` makes the fleet report of them.",
    )
    parser.add_argument("--listen", required=True, metavar="ADDRESS:PORT", help="where to listen (127.0.0.1:8089)")
    parser.add_argument("--dir", required=True, help="the directory the reports are written to")
    parser.add_argument(
        "--token-file", required=True, help="a file holding the token hosts send (mode 0600; at least 16 characters)"
    )
    parser.add_argument(
        "--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="the largest report accepted (default: %(default)s)"
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM, chain included)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.set_defaults(func=serve)
