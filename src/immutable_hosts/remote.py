"""Many hosts over SSH from one process: each inventory host's connection as Ansible's ssh connection would make it,
host keys checked against known_hosts, one command per host, hosts in parallel (paramiko, a thread per host).

From the inventory, as Ansible reads it (of two names for one setting, the later one wins, as in ansible-core):
``ansible_host``/``ansible_ssh_host``, ``ansible_port``/``ansible_ssh_port``, ``ansible_user``/``ansible_ssh_user``,
``ansible_private_key_file``/``ansible_ssh_private_key_file``, ``ansible_host_key_checking``/
``ansible_ssh_host_key_checking``, ``ansible_ssh_timeout``, and of ``ansible_ssh_common_args`` and
``ansible_ssh_extra_args`` the options that mean something to one direct connection: ``-p``, ``-l``, ``-i``,
``-o Port``, ``User``, ``HostName``, ``IdentityFile``, ``IdentitiesOnly``, ``UserKnownHostsFile``,
``GlobalKnownHostsFile``, ``StrictHostKeyChecking`` and ``ConnectTimeout``. As with ssh, the first value given for an
option wins, and what Ansible passes itself (port, user, key, ``StrictHostKeyChecking=no`` when host key checking is
off) comes before the inventory's arguments. Other options (``ProxyJump``, ``ProxyCommand``, ``ControlMaster``...)
are ignored and named once. ``~/.ssh/config``, ansible.cfg and ``ANSIBLE_*`` settings are not read.

Inventory values are data: a value that still holds Jinja (``{{``, ``{%``) or is vault-encrypted is refused for its
host, never evaluated.

Host keys: the known_hosts files ssh reads (``UserKnownHostsFile``, default ``~/.ssh/known_hosts`` and
``~/.ssh/known_hosts2``, plus the global ``/etc/ssh/ssh_known_hosts``). An unknown host is refused unless
``StrictHostKeyChecking`` is ``accept-new`` or ``no`` for it, or the caller accepts new keys; an accepted key is
appended to the first user known_hosts file. A key that differs from a known one, or a known host presenting a key
type it has no entry for, is always refused.

Authentication is by key only: the private key files named (else ssh's default ones, ``~/.ssh/id_*``), and the keys
of ``ssh-agent`` unless ``IdentitiesOnly``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import getpass
import os
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_PORT = 22
DEFAULT_USER_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
DEFAULT_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
MAX_OUTPUT = 16 * 1024 * 1024  # bytes per stream of one host's command

# ansible-core's variable names of each ssh connection setting; of two set, the later one wins.
HOST_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
HOST_KEY_CHECKING_VARS = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
TIMEOUT_VARS = ("ansible_ssh_timeout",)
ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
SSH_CONNECTIONS = ("ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh")

# ssh(1)'s options: those taking an argument, and flags. The few read here are in parse_ssh_args.
_SSH_ARG_OPTIONS = set("BbcDEeFIiJLlmOoPpQRSWw")
_SSH_FLAGS = set("46AaCfGgKkMNnqsTtVvXxYy")
_YES = ("yes", "true", "on", "1")
_NO = ("no", "false", "off", "0")


class TargetError(Exception):
    """An inventory host that cannot be connected to as the inventory describes it; the message says why."""


class ConnectError(Exception):
    """A host that was not read; ``kind`` is ``unreachable``, ``host-key``, ``auth`` or ``command``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- ssh arguments ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SshOptions:
    """What ``ansible_ssh_common_args`` and ``ansible_ssh_extra_args`` say about one direct connection."""

    hostname: str | None = None
    port: int | None = None
    user: str | None = None
    identity_files: list[str] = dataclasses.field(default_factory=list)
    identities_only: bool | None = None
    user_known_hosts: list[str] | None = None
    global_known_hosts: list[str] | None = None
    strict_host_key_checking: str | None = None
    connect_timeout: float | None = None
    ignored: list[str] = dataclasses.field(default_factory=list)


def _option(options: SshOptions, key: str, value: str) -> None:
    """One ``-o Key=Value``; the first value of a setting wins, as in ssh."""
    name = key.lower()
    if name == "port":
        options.port = options.port if options.port is not None else port_number(value)
    elif name == "user":
        options.user = options.user or value
    elif name == "hostname":
        options.hostname = options.hostname or value
    elif name == "identityfile":
        options.identity_files.append(value)
    elif name == "identitiesonly":
        if options.identities_only is None:
            options.identities_only = value.lower() in _YES
    elif name == "userknownhostsfile":
        if options.user_known_hosts is None:
            options.user_known_hosts = value.split()
    elif name == "globalknownhostsfile":
        if options.global_known_hosts is None:
            options.global_known_hosts = value.split()
    elif name == "stricthostkeychecking":
        options.strict_host_key_checking = options.strict_host_key_checking or value.lower()
    elif name == "connecttimeout":
        if options.connect_timeout is None:
            try:
                options.connect_timeout = float(value)
            except ValueError:
                raise TargetError(f"ConnectTimeout {value!r} is not a number of seconds") from None
    else:
        options.ignored.append(key)


def parse_ssh_args(text: str, options: SshOptions | None = None) -> SshOptions:
    """The settings of ssh command-line arguments (``-o Port=2222 -i key``), added to ``options``."""
    options = options if options is not None else SshOptions()
    try:
        words = shlex.split(text or "")
    except ValueError as error:
        raise TargetError(f"cannot split the ssh arguments {text!r}: {error}") from None
    position = 0
    while position < len(words):
        word = words[position]
        position += 1
        if not word.startswith("-") or len(word) < 2:
            options.ignored.append(word)
            continue
        letter, attached = word[1], word[2:]
        if letter in _SSH_FLAGS:
            flags = word[1:]
            if all(flag in _SSH_FLAGS for flag in flags):
                options.ignored += ["-" + flag for flag in flags]
                continue
        if letter not in _SSH_ARG_OPTIONS:
            options.ignored.append(word)
            continue
        if attached:
            value = attached
        elif position < len(words):
            value, position = words[position], position + 1
        else:
            raise TargetError(f"the ssh option {word} lacks its argument in {text!r}")
        if letter == "o":
            key, sep, rest = value.partition("=")
            if not sep:
                key, _, rest = value.strip().partition(" ")
            _option(options, key.strip(), rest.strip())
        elif letter == "p":
            _option(options, "Port", value)
        elif letter == "l":
            _option(options, "User", value)
        elif letter == "i":
            _option(options, "IdentityFile", value)
        else:
            options.ignored.append("-" + letter)
    return options


def port_number(value: Any) -> int:
    try:
        port = int(str(value).strip())
    except ValueError:
        raise TargetError(f"port {value!r} is not a number") from None
    if not 0 < port < 65536:
        raise TargetError(f"port {port} is out of range")
    return port


# --- inventory hosts -------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Defaults:
    """What the command line says for hosts whose inventory does not (Ansible's ``-u`` and ``--private-key``)."""

    user: str | None = None
    private_key: str | None = None
    accept_new_host_keys: bool = False
    timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class Target:
    """One host, as it will be connected to."""

    name: str
    address: str
    port: int
    user: str
    key_files: tuple[str, ...]
    identities_only: bool
    user_known_hosts: tuple[str, ...]
    global_known_hosts: tuple[str, ...]
    accept_new_host_keys: bool
    connect_timeout: float

    @property
    def known_hosts_name(self) -> str:
        """The host as known_hosts names it: ``address``, or ``[address]:port`` on another port than 22."""
        return self.address if self.port == DEFAULT_PORT else f"[{self.address}]:{self.port}"


def inventory_text(variable: str, value: Any) -> str | None:
    """An inventory value used as it is: a string (unwrapped from ansible-inventory's ``__ansible_unsafe``), a number,
    a boolean; one holding Jinja, a vault-encrypted one or a structure is refused."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if "__ansible_vault" in value:
            raise TargetError(f"{variable} is vault-encrypted; status does not decrypt inventory values")
        if set(value) == {"__ansible_unsafe"}:
            value = value["__ansible_unsafe"]
        else:
            raise TargetError(f"{variable} is not a single value")
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, (str, int, float)):
        raise TargetError(f"{variable} is not a single value")
    text = str(value)
    if "{{" in text or "{%" in text:
        raise TargetError(f"{variable} is a Jinja template ({text!r}); status never evaluates templates: give the value itself")
    if "\0" in text or "\n" in text:
        raise TargetError(f"{variable} contains a NUL or a newline")
    return text


def _last(hostvars: Mapping[str, Any], variables: Iterable[str]) -> tuple[str, str] | None:
    found = None
    for variable in variables:
        if variable in hostvars and hostvars[variable] is not None:
            found = (variable, hostvars[variable])
    if found is None:
        return None
    text = inventory_text(found[0], found[1])
    return None if text is None else (found[0], text)


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def target_of(name: str, hostvars: Mapping[str, Any], defaults: Defaults) -> tuple[Target, list[str]]:
    """The connection to one inventory host, and the ssh options its arguments name that are ignored here."""
    connection = _last(hostvars, ("ansible_connection",))
    if connection and connection[1] not in SSH_CONNECTIONS:
        raise TargetError(f"ansible_connection is {connection[1]!r}; status connects over SSH only")
    options = SshOptions()
    checking = _last(hostvars, HOST_KEY_CHECKING_VARS)
    if checking and checking[1].lower() in _NO:
        options.strict_host_key_checking = "no"  # what Ansible passes before the inventory's own arguments
    for variable in ARGS_VARS:
        args = _last(hostvars, (variable,))
        if args:
            parse_ssh_args(args[1], options)
    host = _last(hostvars, HOST_VARS)
    port = _last(hostvars, PORT_VARS)
    user = _last(hostvars, USER_VARS)
    key = _last(hostvars, KEY_VARS)
    timeout = _last(hostvars, TIMEOUT_VARS)
    address = host[1] if host else (options.hostname or name)
    if not address or address.startswith("-"):
        raise TargetError(f"the address {address!r} is not a host name")
    key_files = [key[1]] if key else ([defaults.private_key] if defaults.private_key else [])
    key_files += options.identity_files
    try:
        connect_timeout = float(timeout[1]) if timeout else (options.connect_timeout or defaults.timeout)
    except ValueError:
        raise TargetError(f"ansible_ssh_timeout {timeout[1]!r} is not a number of seconds") from None
    strict = options.strict_host_key_checking or "ask"
    target = Target(
        name=name,
        address=address,
        port=port_number(port[1]) if port else (options.port or DEFAULT_PORT),
        user=(user[1] if user else None) or defaults.user or options.user or getpass.getuser(),
        key_files=tuple(_expand(path) for path in dict.fromkeys(key_files)),
        identities_only=bool(options.identities_only),
        user_known_hosts=tuple(_expand(p) for p in (options.user_known_hosts or DEFAULT_USER_KNOWN_HOSTS)),
        global_known_hosts=tuple(_expand(p) for p in (options.global_known_hosts or DEFAULT_GLOBAL_KNOWN_HOSTS)),
        accept_new_host_keys=defaults.accept_new_host_keys or strict in ("accept-new", "no", "off"),
        connect_timeout=connect_timeout,
    )
    return target, options.ignored


# --- host keys -------------------------------------------------------------------------------------------------------


class KnownHosts:
    """The known_hosts files, each read once; new keys appended under a lock.

    Lines are read as ssh reads them: a line that does not parse is skipped, hashed names are matched, a
    ``@revoked`` key is refused; ``@cert-authority`` lines (host certificates) and wildcard patterns are not supported
    and never match.
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def parse(text: str) -> tuple[Any, Any]:
        """(accepted, revoked) host keys of a known_hosts text, as paramiko HostKeys."""
        import paramiko

        accepted, revoked = paramiko.HostKeys(), paramiko.HostKeys()
        for number, line in enumerate(text.splitlines(), start=1):
            marker, _, rest = line.strip().partition(" ")
            into = {"@revoked": revoked, "@cert-authority": None}.get(marker, accepted)
            if into is None:
                continue
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(rest if marker.startswith("@") else line, number)
            except Exception:  # paramiko raises many kinds for one bad line; ssh skips it, and so does this
                entry = None
            if entry is None or entry.key is None:
                continue
            for name in entry.hostnames:
                into.add(name, entry.key.get_name(), entry.key)
        return accepted, revoked

    def _load(self, path: str) -> tuple[Any, Any]:
        with self._lock:
            if path not in self._files:
                try:
                    text = Path(path).read_text(encoding="utf-8", errors="replace")
                except OSError:
                    text = ""
                self._files[path] = self.parse(text)
            return self._files[path]

    def lookup(self, target: Target) -> tuple[dict[str, Any], list[Any]]:
        """({key type: key}, [revoked keys]) of every known_hosts file for this host (the first file naming a type
        wins)."""
        found: dict[str, Any] = {}
        revoked: list[Any] = []
        for path in (*target.user_known_hosts, *target.global_known_hosts):
            if path == "/dev/null" or path.lower() == "none":
                continue
            accepted, rejected = self._load(path)
            entry = accepted.lookup(target.known_hosts_name)
            for key_type in entry.keys() if entry else ():
                found.setdefault(key_type, entry[key_type])
            entry = rejected.lookup(target.known_hosts_name)
            revoked += [entry[key_type] for key_type in entry] if entry else []
        return found, revoked

    def add(self, target: Target, key: Any) -> str:
        """Append the host's key to its first user known_hosts file (as ssh's ``accept-new`` does); returns the file."""
        path = next((p for p in target.user_known_hosts if p != "/dev/null" and p.lower() != "none"), None)
        if path is None:
            raise ConnectError("host-key", f"unknown host key {fingerprint(key)} and no known_hosts file to add it to")
        line = f"{target.known_hosts_name} {key.get_name()} {key.get_base64()}\n"
        with self._lock:
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "r+b") as handle:
                size = handle.seek(0, os.SEEK_END)
                if size and os.pread(descriptor, 1, size - 1) != b"\n":
                    line = "\n" + line
                handle.write(line.encode("ascii"))
            if path in self._files:
                self._files[path][0].add(target.known_hosts_name, key.get_name(), key)
        return path


def fingerprint(key: Any) -> str:
    import base64
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _preferred_key_types(known: Mapping[str, Any], offered: tuple[str, ...]) -> list[str]:
    """Host key algorithms with the types known_hosts has for the host first (an RSA key is offered as rsa-sha2-*)."""
    first: list[str] = []
    for key_type in known:
        first += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] if key_type == "ssh-rsa" else [key_type]
    first = [t for t in first if t in offered]
    return first + [t for t in offered if t not in first]


def check_host_key(target: Target, key: Any, known: Mapping[str, Any], revoked: list[Any], store: KnownHosts) -> str | None:
    """None when known_hosts has this key; the file it was added to when new and accepted; ConnectError otherwise."""
    if any(bad.asbytes() == key.asbytes() for bad in revoked):
        raise ConnectError("host-key", f"the host key {fingerprint(key)} of {target.known_hosts_name} is revoked in known_hosts")
    expected = known.get(key.get_name())
    if expected is not None:
        if expected.asbytes() == key.asbytes():
            return None
        raise ConnectError(
            "host-key",
            f"host key CHANGED for {target.known_hosts_name}: known {fingerprint(expected)}, offered {fingerprint(key)} "
            "(a man in the middle, or a reinstalled host: check, then fix known_hosts)",
        )
    if known:
        raise ConnectError(
            "host-key",
            f"{target.known_hosts_name} offers {fingerprint(key)}, but known_hosts has only {', '.join(sorted(known))} "
            "keys for it; refused",
        )
    if not target.accept_new_host_keys:
        raise ConnectError(
            "host-key",
            f"unknown host key {fingerprint(key)} for {target.known_hosts_name} (not in {', '.join(target.user_known_hosts)}); "
            "refused: add it to known_hosts, or accept new keys with --accept-new-host-keys",
        )
    return store.add(target, key)


# --- authentication ----------------------------------------------------------------------------------------------------


class PrivateKeys:
    """Private key files, each read once for all hosts; contents never leave this object."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, path: str) -> Any:
        import paramiko

        with self._lock:
            if path not in self._keys:
                try:
                    self._keys[path] = paramiko.PKey.from_path(path)
                except paramiko.PasswordRequiredException:
                    self._keys[path] = ConnectError("auth", f"the private key {path} is encrypted; load it into ssh-agent")
                except (OSError, paramiko.SSHException, ValueError) as error:
                    self._keys[path] = ConnectError("auth", f"cannot read the private key {path}: {type(error).__name__}")
            found = self._keys[path]
        if isinstance(found, ConnectError):
            raise found
        return found


def _candidate_keys(target: Target, keys: PrivateKeys) -> Iterable[tuple[str, Any]]:
    """(where, key) to offer, in order: the files named, ssh-agent's keys (unless IdentitiesOnly), else the defaults."""
    problems: list[ConnectError] = []
    for path in target.key_files:
        try:
            yield path, keys.get(path)
        except ConnectError as error:
            problems.append(error)
    if not target.identities_only and os.environ.get("SSH_AUTH_SOCK"):
        import paramiko

        try:
            agent = paramiko.Agent()
        except (OSError, paramiko.SSHException):
            agent = None  # as ssh does, go on without the agent
        if agent is not None:
            try:
                for key in agent.get_keys():
                    yield "ssh-agent", key
            finally:
                agent.close()
    if not target.key_files:
        for path in map(_expand, DEFAULT_IDENTITIES):
            if os.path.exists(path):
                try:
                    yield path, keys.get(path)
                except ConnectError as error:
                    problems.append(error)
    if problems:
        raise problems[0]


def authenticate(transport: Any, target: Target, keys: PrivateKeys) -> None:
    import paramiko

    tried = 0
    try:
        for _where, key in _candidate_keys(target, keys):
            tried += 1
            try:
                transport.auth_publickey(target.user, key)
            except paramiko.AuthenticationException:
                continue
            if transport.is_authenticated():
                return
    except paramiko.SSHException as error:
        raise ConnectError("auth", f"authentication as {target.user} failed: {error}") from None
    if tried == 0:
        raise ConnectError("auth", "no private key to authenticate with (give ansible_ssh_private_key_file)")
    raise ConnectError("auth", f"permission denied for {target.user} with {tried} key(s) (publickey)")


# --- one command per host ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """One host's command: its output, or why there is none."""

    target: Target
    stdout: bytes = b""
    stderr: bytes = b""
    rc: int | None = None
    error: str | None = None
    kind: str | None = None  # of a ConnectError
    added_host_key: str | None = None  # the known_hosts file a new key went to
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


def _read_all(channel: Any, stderr: bool) -> bytes:
    receive = channel.recv_stderr if stderr else channel.recv
    chunks, size = [], 0
    while True:
        chunk = receive(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_OUTPUT:
            raise ConnectError("command", f"more than {MAX_OUTPUT} bytes of output")
        chunks.append(chunk)


def run_one(target: Target, command: str, stdin: bytes, deadline: float, known: KnownHosts, keys: PrivateKeys) -> Result:
    """Connect, check the host key, authenticate, run ``command`` with ``stdin``; never raises for the host's sake."""
    import paramiko

    result = Result(target)
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        result.timings[name] = round(now - clock, 4)
        clock = now

    transport = None
    try:
        try:
            sock = socket.create_connection((target.address, target.port), timeout=target.connect_timeout)
        except OSError as error:
            raise ConnectError("unreachable", f"cannot connect to {target.address} port {target.port}: {error}") from None
        lap("connect")
        transport = paramiko.Transport(sock)
        transport.banner_timeout = target.connect_timeout
        transport.auth_timeout = target.connect_timeout
        expected, revoked = known.lookup(target)
        options = transport.get_security_options()
        options.key_types = _preferred_key_types(expected, tuple(options.key_types))
        try:
            transport.start_client(timeout=target.connect_timeout)
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise ConnectError("unreachable", f"SSH handshake with {target.address} port {target.port} failed: {error}") from None
        result.added_host_key = check_host_key(target, transport.get_remote_server_key(), expected, revoked, known)
        lap("handshake")
        authenticate(transport, target, keys)
        lap("auth")
        remaining = deadline - time.monotonic()
        try:
            channel = transport.open_session(timeout=max(remaining, 1))
            channel.settimeout(max(remaining, 1))
            channel.exec_command(command)
            channel.sendall(stdin)
            channel.shutdown_write()
            # stdout to its end, then stderr: the command's stderr is a few lines, far below the channel's window
            result.stdout = _read_all(channel, stderr=False)
            result.stderr = _read_all(channel, stderr=True)
            result.rc = channel.recv_exit_status()
        except socket.timeout:
            raise ConnectError("command", "the command did not finish in time") from None
        except (paramiko.SSHException, EOFError, OSError) as error:
            raise ConnectError("command", f"the command's channel failed: {error}") from None
        lap("command")
    except ConnectError as error:
        result.error, result.kind = str(error), error.kind
    finally:
        if transport is not None:
            transport.close()
    return result


def run_all(
    targets: list[Target],
    command: str,
    stdin: bytes,
    forks: int,
    command_timeout: float,
    on_result: Callable[[Result], None] | None = None,
) -> dict[str, Result]:
    """``command`` on every target, ``forks`` at a time; every target gets a Result."""
    import logging

    # paramiko logs a failed handshake with its traceback from its transport thread; the Result says what failed.
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    logging.getLogger("paramiko").propagate = False
    known, keys = KnownHosts(), PrivateKeys()
    results: dict[str, Result] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, forks), thread_name_prefix="ssh") as pool:
        futures = {
            pool.submit(
                lambda t: run_one(t, command, stdin, time.monotonic() + t.connect_timeout + command_timeout, known, keys), target
            ): target
            for target in targets
        }
        for future in concurrent.futures.as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # one host's unexpected failure must not stop the others
                result = Result(futures[future], error=f"{type(error).__name__}: {error}", kind="command")
            results[result.target.name] = result
            if on_result is not None:
                on_result(result)
    return results
