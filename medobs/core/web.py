"""HTTP serving for the package: the server, and exporter-toolkit's ``--web.config.file``.

- :class:`Server` / :func:`start_http`: the package's one way to serve HTTP (exporters, the
  simulator): a thread per connection, a listen backlog of 1024, IPv4 or IPv6 (``[::]`` takes
  both), an idle timeout per connection, TLS wrapped in the connection's own thread (a client
  that never finishes its handshake holds up no one).
- :func:`load_web_config`: exporter-toolkit's web configuration file, read strictly: TLS
  (``tls_server_config``), bcrypt ``basic_auth_users``, ``http_server_config.headers``. A key
  it does not know, a missing file, a malformed hash: one line (:class:`WebConfigError`, exit 1).
- :class:`BasicAuth`: the check of an ``Authorization`` header, bcrypt results cached.

Why not prometheus_client's ``start_http_server``: it does TLS but no basic auth, no HEAD, no
idle timeout and listens with a backlog of 5 (docs/exporters/conventions.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from typing import Any

from medobs import UserError, first_line
from medobs.core.files import read_text

log = logging.getLogger("medobs.web")

#: Seconds a connection may sit idle (between requests, or in the middle of one) before it is closed.
IDLE_TIMEOUT = 30.0


class WebConfigError(UserError):
    """A web configuration file that cannot be used: one line, exit status 1 (as exporter-toolkit's)."""

    exit_code = 1


_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3,
}
#: exporter-toolkit's client_auth_type values this server honours, as ssl's verify modes.
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
#: What exporter-toolkit's format names that this server does not do: refused by name, never ignored.
_NOT_SUPPORTED = {
    "tls_server_config": {"cert", "key", "client_ca", "client_allowed_sans", "cipher_suites",
                          "prefer_server_cipher_suites", "curve_preferences"},
    "": {"rate_limit"},
}
_KEYS = {
    "": {"tls_server_config", "http_server_config", "basic_auth_users"},
    "tls_server_config": {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"},
    "http_server_config": {"http2", "headers"},
    "http_server_config.headers": {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                                   "X-XSS-Protection", "Strict-Transport-Security"},
}
_BCRYPT_HASH = re.compile(r"\$2[abxy]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")


@dataclass(frozen=True)
class WebConfig:
    """What a ``--web.config.file`` asks for (no file: plain HTTP, no authentication)."""

    tls: ssl.SSLContext | None = None
    #: user -> bcrypt hash
    users: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"


def load_web_config(path: Path | None) -> WebConfig:
    """The web configuration in ``path`` (exporter-toolkit's format), checked whole: the TLS
    context is built and every hash parsed now, so a mistake stops the exporter at start."""
    if path is None:
        return WebConfig()
    try:
        import yaml
    except ModuleNotFoundError:
        raise WebConfigError(_needs("PyYAML")) from None
    where = f"web config {path}"
    text = read_text(path, what="web config", limit=1024 * 1024, error=WebConfigError)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise WebConfigError(f"{where}: not YAML: {first_line(error)}") from None
    data = {} if data is None else data
    _check_keys(where, "", data)
    tls = data.get("tls_server_config")
    server = data.get("http_server_config") or {}
    _check_keys(where, "http_server_config", server)
    headers = server.get("headers") or {}
    _check_keys(where, "http_server_config.headers", headers)
    return WebConfig(
        tls=_tls_context(where, path.parent, tls) if tls is not None else None,
        users=_users(where, data.get("basic_auth_users") or {}),
        headers={name: _string(where, f"http_server_config.headers.{name}", value)
                 for name, value in headers.items() if value},
    )


def _needs(module: str) -> str:
    return (f"--web.config.file needs {module}, which every exporter's extra installs: "
            "pip install 'medobs[gpu]' (or [queue], [inference])")


def _check_keys(where: str, section: str, data: Any) -> None:
    if not isinstance(data, dict):
        raise WebConfigError(f"{where}: {section or 'the file'} must be a mapping, not {type(data).__name__}")
    for key in data:
        dotted = f"{section}.{key}" if section else str(key)
        if key in _NOT_SUPPORTED.get(section, ()):
            raise WebConfigError(f"{where}: {dotted} is exporter-toolkit's but not supported here "
                                 "(docs/exporters/conventions.md)")
        if key not in _KEYS[section]:
            raise WebConfigError(f"{where}: unknown key {dotted}")


def _string(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise WebConfigError(f"{where}: {key} must be a string")
    return value


def _tls_context(where: str, base: Path, tls: Any) -> ssl.SSLContext:
    _check_keys(where, "tls_server_config", tls)

    def file(key: str) -> Path | None:
        if tls.get(key) is None:
            return None
        found = base / _string(where, f"tls_server_config.{key}", tls[key])  # relative to the config file
        if not found.is_file():
            raise WebConfigError(f"{where}: tls_server_config.{key} {found}: no such file")
        return found

    cert, key, client_ca = file("cert_file"), file("key_file"), file("client_ca_file")
    if cert is None or key is None:
        raise WebConfigError(f"{where}: tls_server_config needs both cert_file and key_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for name, attribute, default in (("min_version", "minimum_version", "TLS12"), ("max_version", "maximum_version", "TLS13")):
        version = tls.get(name, default)
        if version not in _TLS_VERSIONS:
            raise WebConfigError(f"{where}: tls_server_config.{name} {version!r} is not one of {', '.join(_TLS_VERSIONS)}")
        setattr(context, attribute, _TLS_VERSIONS[version])
    try:
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(client_ca)
    except (ssl.SSLError, OSError) as error:
        raise WebConfigError(f"{where}: cannot load the certificate, key or client CA: {first_line(error)}") from None
    # With a client CA and no policy, verify clients: a CA given and not used would be a surprise.
    auth = tls.get("client_auth_type", "RequireAndVerifyClientCert" if client_ca else "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise WebConfigError(f"{where}: tls_server_config.client_auth_type {auth!r} is not one of {', '.join(_CLIENT_AUTH)}")
    if _CLIENT_AUTH[auth] != ssl.CERT_NONE and client_ca is None:
        raise WebConfigError(f"{where}: tls_server_config.client_auth_type {auth} needs client_ca_file")
    context.verify_mode = _CLIENT_AUTH[auth]
    return context


def _users(where: str, users: Any) -> dict[str, str]:
    if not isinstance(users, dict):
        raise WebConfigError(f"{where}: basic_auth_users must be a mapping of user to bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            raise WebConfigError(f"{where}: basic_auth_users.{user}: not a bcrypt hash "
                                 "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
    if users:
        try:
            import bcrypt  # noqa: F401  (checked now, used per request)
        except ModuleNotFoundError:
            raise WebConfigError(_needs("bcrypt")) from None
    return {str(user): hashed for user, hashed in users.items()}


class BasicAuth:
    """Checks ``Authorization: Basic ...`` against bcrypt hashes. A bcrypt check costs about 70 ms
    at cost 10, so a successful one is remembered (a digest of user, password and hash, in memory
    only) and a scrape every 15 s pays it once; an unknown user is checked against a real hash too,
    so that the answer takes as long as for a wrong password."""

    CACHE_SIZE = 256

    def __init__(self, users: dict[str, str]):
        self.users = users
        self._decoy = next(iter(users.values()), "")
        self._good: set[bytes] = set()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self.users.get(user)
        key = hashlib.sha256(b"\0".join((user.encode(), password, (hashed or "").encode()))).digest()
        with self._lock:
            if hashed is not None and key in self._good:
                return True
        import bcrypt

        matched = bcrypt.checkpw(password, (hashed or self._decoy).encode())
        if not (matched and hashed is not None):
            return False
        with self._lock:
            if len(self._good) >= self.CACHE_SIZE:
                self._good.clear()
            self._good.add(key)
        return True


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
        return (user.decode(), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


class Server(ThreadingHTTPServer):
    """A thread per connection, none of which holds up the exit, and a listen backlog of 1024 (the
    default of 5 refuses connections when a burst of clients arrives at once). IPv6 addresses
    listen on IPv6, ``::`` on IPv4 too. Each connection gets ``idle_timeout`` seconds per read
    (a half-sent request is closed after it) and, with ``tls``, its handshake in its own thread."""

    request_queue_size = 1024
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 tls: ssl.SSLContext | None = None, idle_timeout: float | None = IDLE_TIMEOUT):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.tls, self.idle_timeout = tls, idle_timeout
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if self.server_address[0] == "::" else 1)
        TCPServer.server_bind(self)  # HTTPServer's would ask DNS for this host's name; it is not needed
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.idle_timeout)
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            secured = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:  # a plain-HTTP client, a bad certificate, a timeout
            log.debug("TLS handshake with %s failed: %s", client_address[0], first_line(error))
            return
        try:
            super().finish_request(secured, client_address)
        finally:
            secured.close()


def start_http(handler: type[BaseHTTPRequestHandler], listen: tuple[str, int], name: str, hint: str = "",
               tls: ssl.SSLContext | None = None, idle_timeout: float | None = IDLE_TIMEOUT) -> Server:
    """Serve ``handler`` on ``listen`` in a background thread named ``name``; the caller owns
    ``shutdown()``. An address that cannot be bound is a UserError naming ``name`` (and ``hint``)."""
    try:
        server = Server(listen, handler, tls, idle_timeout)
    except OSError as error:
        advice = f"; {hint}" if hint else ""
        shown = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
        raise UserError(f"{name}: cannot listen on {shown}:{listen[1]}: {error.strerror}{advice}") from None
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True).start()
    return server
