"""The containers-image proxy as rpm-ostree and bootc use it: ``skopeo experimental-image-proxy`` over a socket pair.

ostree-ext (inside rpm-ostree and bootc) fetches container images through this API, so a pull goes through the host's
real containers/image stack: ``/etc/containers/policy.json`` and ``registries.d`` (signatures), ``certs.d`` (TLS),
and the first of ``/run/ostree/auth.json``, ``/etc/ostree/auth.json``, ``/usr/lib/ostree/auth.json`` (credentials;
none of them: anonymous). Protocol: one JSON request per SOCK_SEQPACKET packet, ``{"method", "args"}``; a reply
``{"success", "value", "pipeid", "error"}``, with the read end of a pipe passed as a file descriptor when data
follows, and ``FinishPipe`` once it is read.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading

import simcore as sc

# typing only for type checkers, as in simcore.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AUTH_FILES = ("run/ostree/auth.json", "etc/ostree/auth.json", "usr/lib/ostree/auth.json")
POLICY = "etc/containers/policy.json"
MAX_REPLY = 1 << 20


class ProxyError(Exception):
    """A method failed; ``str()`` is the proxy's message, ``method`` the method's name."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(message)
        self.method = method


def auth_args() -> list[str]:
    """What ostree-ext passes: the first system auth file that exists, else no credentials at all."""
    for relative in AUTH_FILES:
        if sc.rpath(relative).exists():
            return ["--authfile", str(sc.rpath(relative))]
    return ["--no-creds"]


def policy_default_is_insecure() -> bool:
    """ostree-ext refuses ``ostree-image-signed:`` when the policy's default is a lone insecureAcceptAnything (the
    stock policy of Fedora and Debian), since then nothing would be verified."""
    try:
        policy = json.loads(sc.rpath(POLICY).read_text())
    except (OSError, ValueError):
        return False
    default = policy.get("default") if isinstance(policy, dict) else None
    return isinstance(default, list) and len(default) == 1 and default[0] == {"type": "insecureAcceptAnything"}


class ImageProxy:
    """One ``skopeo experimental-image-proxy`` process; use as a context manager."""

    def __init__(self, arch: str | None = None) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        global_args = ["--override-arch", arch] if arch else []
        argv = ["skopeo", *global_args, "experimental-image-proxy", "--sockfd", str(theirs.fileno()), *auth_args()]
        env = {**os.environ, "LC_ALL": "C"}
        self.process = subprocess.Popen(
            argv, pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
        )
        theirs.close()
        self.sock = ours
        self.call("Initialize")

    def __enter__(self) -> ImageProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(ProxyError, OSError):
            self.call("Shutdown")
        self.sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def call(self, method: str, *args: Any) -> tuple[Any, int, list[int]]:
        try:
            self.sock.send(json.dumps({"method": method, "args": list(args)}).encode())
            message, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_REPLY, 2)
        except OSError:
            message, fds = b"", []
        if not message:
            stderr = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
            raise ProxyError(method, f"the proxy exited: {stderr}")
        reply = json.loads(message)
        if not reply.get("success"):
            for fd in fds:
                os.close(fd)
            raise ProxyError(method, str(reply.get("error", "")))
        return reply.get("value"), int(reply.get("pipeid") or 0), fds

    def read(self, method: str, *args: Any) -> tuple[Any, bytes]:
        """A method whose data comes through a pipe: its value and the data."""
        value, pipeid, fds = self.call(method, *args)
        if not fds:
            raise ProxyError(method, "no pipe in the reply")
        for fd in fds[1:]:
            os.close(fd)
        # The proxy closes its end only when FinishPipe comes, and FinishPipe waits until the data is written: read
        # while asking, as ostree-ext does.
        chunks: list[bytes] = []

        def drain() -> None:
            with os.fdopen(fds[0], "rb") as pipe:
                chunks.append(pipe.read())

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            self.call("FinishPipe", pipeid)
        finally:
            reader.join(timeout=60)
        return value, b"".join(chunks)

    def open_image(self, reference: str) -> int:
        return int(self.call("OpenImage", reference)[0])

    def manifest(self, image: int) -> tuple[str, bytes]:
        """The digest the image was opened by (an index's, for a multi-arch tag) and this arch's manifest."""
        digest, data = self.read("GetManifest", image)
        return str(digest), data

    def config(self, image: int) -> dict[str, Any]:
        return json.loads(self.read("GetFullConfig", image)[1])
