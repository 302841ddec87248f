"""exporter-toolkit's web configuration file read strictly, the basic-auth check and its cache, the
flags, and the log formats (medobs.core.web, medobs.core.logs, medobs.core.runtime's flags)."""

import base64
import json
import logging
import ssl

import bcrypt
import pytest

from medobs.core import logs, web
from medobs.core.runtime import listen_address
from medobs.cli import parser

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def load(tmp_path, body: str) -> web.WebConfig:
    path = tmp_path / "web.yml"
    path.write_text(body)
    return web.load_web_config(path)


@pytest.mark.parametrize("body,message", [
    ("tls_server_config:\n  cert_file: absent.pem\n  key_file: absent-key.pem\n",
     r"tls_server_config\.cert_file .*/absent\.pem: no such file$"),
    ("tls_server_config:\n  key_file: k.pem\n", r"key_file .*: no such file"),
    ("tls_server_config: {}\n", r"tls_server_config needs both cert_file and key_file$"),
    ("basic_auth_users:\n  alice: plain-text\n", r"basic_auth_users\.alice: not a bcrypt hash"),
    ("basic_auth_users:\n  alice: '$2y$99$" + "a" * 53 + "'\n", r"basic_auth_users\.alice: not a bcrypt hash"),
    ("basic_auth_users: [alice]\n", r"basic_auth_users must be a mapping"),
    ("basic_auth_user:\n  alice: x\n", r": unknown key basic_auth_user$"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", r"unknown key http_server_config\.headers\.X-Powered-By$"),
    ("http_server_config:\n  http3: true\n", r"unknown key http_server_config\.http3$"),
    ("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     r"tls_server_config\.cipher_suites is exporter-toolkit's but not supported here"),
    ("- a list\n", r"the file must be a mapping, not list"),
    ("key: [unclosed\n", r": not YAML: "),
])
def test_a_bad_file_is_one_line_naming_the_problem(tmp_path, body, message):
    path = tmp_path / "web.yml"
    path.write_text(body)
    with pytest.raises(web.WebConfigError, match=message) as raised:
        web.load_web_config(path)
    assert raised.value.exit_code == 1 and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"web config {path}: ")
    assert "s3cret" not in str(raised.value)


def test_a_missing_undecodable_or_huge_file_is_one_line(tmp_path):
    with pytest.raises(web.WebConfigError, match=r"^cannot read the web config .*/absent\.yml: No such file"):
        web.load_web_config(tmp_path / "absent.yml")
    (tmp_path / "latin.yml").write_bytes(b"\xff\n")
    with pytest.raises(web.WebConfigError, match=r"^the web config .*/latin\.yml is not UTF-8 text"):
        web.load_web_config(tmp_path / "latin.yml")
    (tmp_path / "huge.yml").write_bytes(b"#" * (2 * 1024 * 1024))
    with pytest.raises(web.WebConfigError, match=r"^the web config .*/huge\.yml is larger than 1 MiB"):
        web.load_web_config(tmp_path / "huge.yml")


def test_no_file_and_an_empty_file_serve_plain_http_without_users(tmp_path):
    for config in (web.load_web_config(None), load(tmp_path, "")):
        assert config.tls is None and config.users == {} and config.scheme == "http"


def test_users_and_headers_are_read(tmp_path):
    config = load(tmp_path, f"basic_auth_users:\n  alice: '{HASH}'\nhttp_server_config:\n  http2: false\n  headers:\n"
                            "    X-Frame-Options: deny\n    Content-Security-Policy: ''\n")
    assert config.users == {"alice": HASH}
    assert config.headers == {"X-Frame-Options": "deny"}  # blank: unset, as exporter-toolkit does


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_checks_bcrypt_and_remembers_only_successes(monkeypatch):
    auth = web.BasicAuth({"alice": HASH})
    checks = []
    real = bcrypt.checkpw
    monkeypatch.setattr(bcrypt, "checkpw", lambda password, hashed: checks.append(password) or real(password, hashed))
    assert auth.allows(basic("alice", "s3cret"))
    assert auth.allows(basic("alice", "s3cret"))
    assert len(checks) == 1  # the second from the cache
    assert not auth.allows(basic("alice", "wrong")) and not auth.allows(basic("alice", "wrong"))
    assert len(checks) == 3  # failures are never cached
    assert not auth.allows(basic("mallory", "s3cret"))
    assert len(checks) == 4  # an unknown user costs a real check too: no timing difference
    for header in (None, "", "Bearer x", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert not auth.allows(header)


def test_the_cache_is_bounded():
    auth = web.BasicAuth({"alice": HASH})
    auth.CACHE_SIZE = 2
    for _ in range(3):
        assert auth.allows(basic("alice", "s3cret"))
    assert len(auth._good) <= 2


def test_tls_versions_and_client_auth_are_checked_before_use(tmp_path, monkeypatch):
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    bad_version = "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: SSL3\n"
    with pytest.raises(web.WebConfigError, match=r"min_version 'SSL3' is not one of TLS10, TLS11, TLS12, TLS13"):
        load(tmp_path, bad_version)
    with pytest.raises(web.WebConfigError, match=r"cannot load the certificate, key or client CA"):
        load(tmp_path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n")
    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", lambda *args: None)
    with pytest.raises(web.WebConfigError, match=r"client_auth_type 'RequireAnyClientCert' is not one of"):
        load(tmp_path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  client_auth_type: RequireAnyClientCert\n")
    config = load(tmp_path, "tls_server_config:\n  cert_file: c.pem\n  key_file: k.pem\n  min_version: TLS13\n")
    assert config.scheme == "https" and config.tls.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.tls.verify_mode == ssl.CERT_NONE


def test_the_flags_as_node_exporter_names_them():
    args = parser("exporter gpu").parse_args([
        "exporter", "gpu", "--web.listen-address", "[::1]:9400", "--listen", "127.0.0.1:9401",
        "--web.telemetry-path", "/m", "--log.level", "debug", "--log.format", "json",
    ])
    assert args.listen == [("::1", 9400), ("127.0.0.1", 9401)]
    assert (args.telemetry_path, args.log_level, args.log_format) == ("/m", "debug", "json")
    defaults = parser("exporter gpu").parse_args(["exporter", "gpu"])
    assert defaults.listen is None and defaults.default_listen == ("0.0.0.0", 9400)
    assert listen_address("[::]:9400") == ("::", 9400)
    with pytest.raises(Exception, match="in brackets"):
        listen_address("::1:9400")


def record(message: str, level=logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord("medobs.exporter", level, __file__, 1, message, (), None)


def test_logfmt_and_json_lines():
    line = logs.LogfmtFormatter().format(record('NVML: timeout "x"\nmore'))
    assert line.startswith("ts=") and ' level=warn logger=medobs.exporter msg="NVML: timeout \\"x\\"\\nmore"' in line
    assert logs.LogfmtFormatter().format(record("plain", logging.INFO)).endswith("level=info logger=medobs.exporter msg=plain")
    fields = json.loads(logs.JsonFormatter().format(record("hello")))
    assert fields["level"] == "warn" and fields["msg"] == "hello" and fields["ts"].endswith("Z")
