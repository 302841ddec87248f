"""Bad backends: nothing listening, too slow, malformed or truncated JSON, 401, a certificate not
trusted. The exporter answers every scrape with up 0 and a counted error of the right kind, logs one
line without the password, and recovers when the backend comes back (a local server that then
proxies the real broker, over HTTPS for the TLS options)."""

import logging
import ssl
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import certifi
import pytest
import requests

from medobs.core.catalog import queue as catalog
from tests.conftest import free_port
from tests.queue_broker import AUTH, MANAGEMENT, scrape, serving, value, wait_for

PASSWORD = "pa55-never-logged"


class Backend(ThreadingHTTPServer):
    """A management API that misbehaves as ``mode`` says, or proxies the real one (``proxy``)."""

    daemon_threads = True

    def __init__(self, port: int, mode: str, tls: ssl.SSLContext | None = None):
        self.mode = mode
        super().__init__(("127.0.0.1", port), _Handler)
        if tls is not None:  # HTTPS: each connection's handshake is made as it is accepted
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Backend

    def do_GET(self) -> None:  # noqa: N802
        mode = self.server.mode
        if mode == "401":
            return self._send(401, b'{"error":"not_authorised","reason":"Login failed"}', {"WWW-Authenticate": 'Basic realm="RabbitMQ Management"'})
        if mode == "malformed":
            return self._send(200, b"<html><body>502 Bad Gateway</body></html>")
        if mode == "slow":
            time.sleep(3)
        real = requests.get(MANAGEMENT + self.path, auth=AUTH, timeout=10)
        body = real.content
        if mode == "truncated":  # a complete HTTP answer whose JSON stops half way
            return self._send(200, body[: len(body) // 2])
        if mode == "cut":  # the connection drops before the promised length
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return None
        return self._send(real.status_code, body)

    def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, header in (headers or {}).items():
            self.send_header(name, header)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def env(monkeypatch):
    """The exporter's credentials: a password that must never show (the proxy logs in as guest)."""
    monkeypatch.setenv("RABBITMQ_USER", "guest")
    monkeypatch.setenv("RABBITMQ_PASSWORD", PASSWORD)


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,kind",
    [
        (None, "connection"),
        ("slow", "timeout"),
        ("malformed", "malformed"),
        ("truncated", "malformed"),
        ("cut", "malformed"),
        ("401", "http_401"),
    ],
)
def test_bad_backend_gives_up_zero_then_recovers(env, caplog, mode, kind):
    port = free_port()
    backend = Backend(port, mode) if mode else None
    flags = ("--rabbitmq-url", f"http://127.0.0.1:{port}", "--include-vhost", "no-such-vhost",
             "--scrape-timeout-ceiling", "1", "--topology-interval", "1", "--details-interval", "1")
    try:
        with caplog.at_level(logging.INFO, logger="medobs"), serving(*flags) as (_, url):
            for _ in range(2):
                started = time.monotonic()
                body = requests.get(url, timeout=10).text
                assert time.monotonic() - started < 2.5, "the scrape waited past the timeout"
                samples = scrape(url)
                assert value(samples, catalog.UP.name) == 0
                assert value(samples, catalog.SCRAPE_ERRORS.name, kind=kind) >= 1
                assert PASSWORD not in body
            errors = {dict(labels)["kind"] for (name, labels) in samples if name == catalog.SCRAPE_ERRORS.name}
            assert errors == {kind}
            if backend is None:
                backend = Backend(port, "proxy")
            backend.mode = "proxy"
            recovered = wait_for(lambda: scrape(url), lambda s: value(s, catalog.UP.name) == 1, what="recovery")
            assert value(recovered, catalog.NODE_UP.name, node="rabbit@localhost") == 1
    finally:
        if backend is not None:
            backend.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"{kind} error" in warnings[0] and f"127.0.0.1:{port}" in warnings[0]
    assert all("\n" not in message for message in warnings)
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)
    assert any("collecting again" in r.getMessage() for r in caplog.records)


def test_the_scrape_timeout_header_bounds_a_collection(env):
    port = free_port()
    backend = Backend(port, "slow")
    try:
        with serving("--rabbitmq-url", f"http://127.0.0.1:{port}", "--scrape-timeout-ceiling", "30") as (_, url):
            started = time.monotonic()
            body = requests.get(url, headers={"X-Prometheus-Scrape-Timeout-Seconds": "1.2"}, timeout=10).text
            assert time.monotonic() - started < 2
            assert f"{catalog.UP.name} 0.0" in body
    finally:
        backend.stop()


def test_a_node_whose_plugin_fails_is_reported_and_the_rest_still_served():
    dead_node = f"http://127.0.0.1:{free_port()}"
    flags = ("--rabbitmq-url", MANAGEMENT, "--include-vhost", "no-such-vhost",
             "--prometheus-url", "http://127.0.0.1:15692", "--prometheus-url", dead_node)
    with serving(*flags) as (_, url):
        samples = scrape(url)
    assert value(samples, catalog.UP.name) == 1
    assert value(samples, catalog.NODE_UP.name, node="http://127.0.0.1:15692") == 1
    assert value(samples, catalog.NODE_UP.name, node=dead_node) == 0
    assert value(samples, catalog.READ_ERRORS.name, source="plugin", kind="connection") == 1


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["/usr/bin/openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def https_backend(tmp_path_factory):
    """The management API behind HTTPS with a certificate for 127.0.0.1 from a private CA: (URL, CA file)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=medobs test CA",
             cwd=folder)
    _openssl("req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=folder)
    (folder / "server.ext").write_text(
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nkeyUsage = digitalSignature\n"
        "extendedKeyUsage = serverAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "1", "-extfile", "server.ext", "-out", "server.pem", cwd=folder)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(folder / "server.pem", folder / "server.key")
    port = free_port()
    backend = Backend(port, "proxy", tls)
    try:
        yield f"https://127.0.0.1:{port}", folder / "ca.pem"
    finally:
        backend.stop()


@pytest.mark.parametrize("trust", ["system CAs", "--ca-file", "--insecure-skip-verify"])
def test_tls_to_the_management_api_verifies_the_certificate_as_told(env, monkeypatch, caplog, https_backend, trust):
    base_url, ca_file = https_backend
    # as in many containers: requests would let it override a Session's own verify setting
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    tls_flags = {"system CAs": (), "--ca-file": ("--ca-file", str(ca_file)), "--insecure-skip-verify": (trust,)}[trust]
    flags = ("--rabbitmq-url", base_url, "--include-vhost", "no-such-vhost", "--scrape-timeout-ceiling", "5", *tls_flags)
    with caplog.at_level(logging.INFO, logger="medobs"), warnings.catch_warnings(record=True) as python_warnings:
        warnings.simplefilter("always")
        with serving(*flags) as (_, url):
            samples = scrape(url)
    assert not [w for w in python_warnings if "Unverified HTTPS" in str(w.message)], "urllib3 warns on every request"
    if trust == "system CAs":  # the private CA is not among them: the handshake fails
        assert value(samples, catalog.UP.name) == 0
        errors = {dict(labels)["kind"]: v for (name, labels), v in samples.items() if name == catalog.SCRAPE_ERRORS.name}
        assert errors == {"tls": 1}
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1 and "tls error" in said[0] and "certificate verify failed" in said[0], said
    else:
        assert value(samples, catalog.UP.name) == 1
        assert value(samples, catalog.NODE_UP.name, node="rabbit@localhost") == 1
        said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert said == (["the broker's TLS certificate is not verified (--insecure-skip-verify)"]
                        if trust == "--insecure-skip-verify" else [])
    assert not any(PASSWORD in r.getMessage() for r in caplog.records)
