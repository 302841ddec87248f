"""Issue 17's acceptance for the exporter-toolkit conventions, on each of the three exporters run as
a user runs them (``medobs exporter gpu|queue|inference`` in a subprocess): on ``[::1]`` with TLS
(a self-signed certificate made here with openssl) and a bcrypt user, no credentials and a wrong
password get 401, the right one 200 with ``*_build_info`` and ``process_resident_memory_bytes``;
HEAD answers; promtool finds nothing to say; a bad web config file is one line and exit 1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import TypeVar
from pathlib import Path

import bcrypt
import pytest
import requests

from tests.conftest import REPO, free_port, medobs, require_binary

PASSWORD = "correct horse"
#: Each exporter, with what it needs to start beside nothing (its backend absent: it serves up 0).
EXPORTERS = {
    "gpu": ("medobs_gpu", ["--pcie-interval", "0", "--allow-no-gpu"]),
    "queue": ("medobs_queue", ["--rabbitmq-url", "http://127.0.0.1:1"]),
    "inference": ("medobs_inference", ["--tfserving-url", "http://127.0.0.1:1", "--model", "m", "--probe-interval", "0"]),
}


T = TypeVar("T")


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Path:
    """A folder with a self-signed certificate for localhost, ::1 and 127.0.0.1, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [require_binary("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:::1,IP:127.0.0.1"],
        cwd=folder, check=True, capture_output=True,
    )
    return folder


def web_config(folder: Path, body: str) -> Path:
    path = folder / "web.yml"
    path.write_text(body)
    return path


def good_config(tls: Path) -> Path:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
    return web_config(tls, (
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS12\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    ))


def start(name: str, *flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "medobs.cli", "exporter", name, *EXPORTERS[name][1], *flags],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def once_listening(process: subprocess.Popen, attempt: Callable[[], T], refused: type[Exception] = requests.ConnectionError) -> T:
    """``attempt()``'s result once the exporter ``process`` listens (retried while it is ``refused``);
    an AssertionError with the exporter's output when it exits or does not listen within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return attempt()
        except refused:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the exporter did not listen:\n{process.communicate()[0]}") from None
            time.sleep(0.1)


@pytest.fixture(params=sorted(EXPORTERS))
def secured(request, tls) -> Iterator[tuple[str, str]]:
    """An exporter on ``https://[::1]:PORT`` with TLS and a bcrypt user; yields (name, base URL)."""
    port = free_ipv6_port()
    process = start(request.param, "--web.listen-address", f"[::1]:{port}", "--web.config.file", str(good_config(tls)))
    base = f"https://[::1]:{port}"
    try:
        once_listening(process, lambda: requests.get(f"{base}/healthz", verify=tls / "cert.pem", timeout=2))
        yield request.param, base
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=20)[0]
        assert process.returncode == 0, output
        assert PASSWORD not in output


def test_tls_and_basic_auth_on_ipv6(secured, tls):
    name, base = secured
    prefix, ca = EXPORTERS[name][0], tls / "cert.pem"
    metrics = f"{base}/metrics"
    assert requests.get(metrics, verify=ca, timeout=10).status_code == 401
    assert requests.get(metrics, verify=ca, timeout=10, auth=("prometheus", "wrong")).status_code == 401
    assert requests.get(metrics, verify=ca, timeout=10, auth=("nobody", PASSWORD)).status_code == 401
    answer = requests.get(metrics, verify=ca, timeout=10, auth=("prometheus", PASSWORD))
    assert answer.status_code == 200 and answer.headers["X-Content-Type-Options"] == "nosniff"
    text = answer.text
    assert f'{prefix}_build_info{{python="' in text and f"\n{prefix}_up " in text
    assert "\nprocess_resident_memory_bytes " in text and "\npython_gc_collections_total{" in text
    check = subprocess.run([require_binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr

    head = requests.head(metrics, verify=ca, timeout=10, auth=("prometheus", PASSWORD))
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 0
    landing = requests.get(base + "/", verify=ca, timeout=10, auth=("prometheus", PASSWORD))
    assert landing.status_code == 200 and 'href="/metrics"' in landing.text
    with pytest.raises(requests.exceptions.SSLError):  # the certificate is checked: not one of the system's CAs
        requests.get(metrics, timeout=10, auth=("prometheus", PASSWORD))

    # Cached after the first success: a scrape is not a bcrypt hash each time (about 60 ms at cost 10).
    with requests.Session() as session:
        session.verify, session.auth, session.trust_env = ca, ("prometheus", PASSWORD), False
        session.get(metrics, timeout=10)
        started = time.monotonic()
        for _ in range(10):
            assert session.get(base + "/", timeout=10).status_code == 200
        assert (time.monotonic() - started) / 10 < 0.05


def test_a_plain_http_listener_on_every_ipv6_and_ipv4_address_with_another_path():
    port = free_port()
    process = start("queue", "--web.listen-address", f"[::]:{port}", "--web.telemetry-path", "/custom")
    try:
        v4 = once_listening(process, lambda: requests.get(f"http://127.0.0.1:{port}/custom", timeout=5))
        v6 = requests.get(f"http://[::1]:{port}/custom", timeout=5)
        assert v4.status_code == v6.status_code == 200 and "medobs_queue_build_info{" in v6.text
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 404
        assert 'href="/custom"' in requests.get(f"http://127.0.0.1:{port}/", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


def test_a_half_sent_request_is_closed_after_the_idle_timeout():
    port = free_port()
    process = start("gpu", "--listen", f"127.0.0.1:{port}", "--web.idle-timeout", "1")
    try:
        sock = once_listening(process, lambda: socket.create_connection(("127.0.0.1", port), timeout=10), OSError)
        with sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            started = time.monotonic()
            assert sock.recv(1024) == b""  # closed by the exporter, not by our 10 s timeout
            assert time.monotonic() - started < 5
        assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200  # and it still serves
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


BAD_CONFIGS = {
    "missing cert": ("tls_server_config:\n  cert_file: absent.pem\n  key_file: key.pem\n",
                     r"tls_server_config\.cert_file .*absent\.pem: no such file"),
    "malformed hash": ("basic_auth_users:\n  prometheus: not-a-bcrypt-hash\n",
                       r"basic_auth_users\.prometheus: not a bcrypt hash"),
    "unknown key": ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  certfile: cert.pem\n",
                    r"unknown key tls_server_config\.certfile"),
    "unknown top-level key": ("basic_auth_user:\n  prometheus: x\n", r"unknown key basic_auth_user$"),
    "not supported here": ("rate_limit:\n  interval: 1s\n", r"rate_limit is exporter-toolkit's but not supported"),
    "key and cert mismatch": ("tls_server_config:\n  cert_file: cert.pem\n  key_file: other-key.pem\n",
                              r"cannot load the certificate, key or client CA"),
    "not yaml": ("tls_server_config: [\n", r": not YAML: "),
    "client auth without a CA": (
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
        r"client_auth_type RequireAndVerifyClientCert needs client_ca_file"),
}


ACCEPTANCE = ("missing cert", "malformed hash", "unknown key")


@pytest.mark.parametrize("name,case", [(name, case) for name in sorted(EXPORTERS) for case in ACCEPTANCE]
                         + [("gpu", case) for case in sorted(BAD_CONFIGS) if case not in ACCEPTANCE])
def test_a_bad_web_config_is_one_line_and_exit_1(tls, tmp_path, name, case):
    if case == "key and cert mismatch":
        subprocess.run([require_binary("openssl"), "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                        "-out", str(tmp_path / "other-key.pem")], check=True, capture_output=True)
    for pem in ("cert.pem", "key.pem"):
        os.symlink(tls / pem, tmp_path / pem)
    body, expected = BAD_CONFIGS[case]
    config = web_config(tmp_path, body)
    result = medobs("exporter", name, *EXPORTERS[name][1], "--listen", f"127.0.0.1:{free_port()}",
                    "--web.config.file", str(config), timeout=60)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"medobs exporter: error: web config {config}: "), result.stderr
    assert re.search(expected, lines[0]), lines[0]


def test_client_certificates_when_a_client_ca_is_given(tls, tmp_path):
    """A client CA without client_auth_type verifies clients (RequireAndVerifyClientCert)."""
    for pem in ("cert.pem", "key.pem"):
        os.symlink(tls / pem, tmp_path / pem)
    config = web_config(tmp_path, "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  client_ca_file: cert.pem\n")
    port = free_port()
    process = start("gpu", "--listen", f"127.0.0.1:{port}", "--web.config.file", str(config))
    url, ca, client = f"https://127.0.0.1:{port}/metrics", tls / "cert.pem", (str(tls / "cert.pem"), str(tls / "key.pem"))
    try:
        answer = once_listening(process, lambda: requests.get(url, verify=ca, cert=client, timeout=5))
        assert answer.status_code == 200 and "medobs_gpu_build_info{" in answer.text
        with pytest.raises(requests.exceptions.RequestException):  # no client certificate: the handshake fails
            requests.get(url, verify=ca, timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
