"""HTTP to the broker: one session, TLS options, reads bounded by the collection deadline, and
every failure turned into a :class:`CollectionError` of a small fixed set of kinds."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3

from medobs.core.runtime import CollectionError, Deadline, safe_url

#: Every kind of error the queue exporter counts (the ``kind`` label).
ERROR_KINDS = ("connection", "tls", "timeout", "http_401", "http_error", "malformed")

_CHUNK = 1 << 16

log = logging.getLogger("medobs.exporter.queue")


@dataclass(frozen=True)
class TlsOptions:
    """How to verify the broker's certificate and, optionally, present ours."""

    ca_file: Path | None = None
    insecure: bool = False
    client_cert: Path | None = None
    client_key: Path | None = None

    def verify(self) -> bool | str:
        return False if self.insecure else (str(self.ca_file) if self.ca_file else True)

    def cert(self) -> tuple[str, str] | str | None:
        if self.client_cert and self.client_key:
            return str(self.client_cert), str(self.client_key)
        return str(self.client_cert) if self.client_cert else None


class HttpClient:
    """GETs with basic auth (never logged), bounded by a :class:`Deadline` end to end."""

    def __init__(self, user: str | None, password: str | None, tls: TlsOptions = TlsOptions()):
        self.session = requests.Session()
        if user is not None:
            self.session.auth = (user, password or "")
        # Passed with each request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a
        # Session's verify (psf/requests#3829), which would ignore --ca-file and --insecure-skip-verify.
        self.verify = tls.verify()
        if tls.insecure:
            # Said once here, not by urllib3 on every request of every scrape.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning("the broker's TLS certificate is not verified (--insecure-skip-verify)")
        self.session.cert = tls.cert()
        self.session.headers["Accept-Encoding"] = "identity"

    def get_text(self, url: str, deadline: Deadline) -> str:
        where = safe_url(url)
        try:
            with self.session.get(url, timeout=deadline.remaining(), stream=True, verify=self.verify) as response:
                if response.status_code == 401:
                    raise CollectionError("http_401", f"{where}: 401 Unauthorized (check RABBITMQ_USER / RABBITMQ_PASSWORD)")
                if response.status_code == 403:
                    raise CollectionError("http_error", f"{where}: 403 Forbidden (the user needs the monitoring tag)")
                if response.status_code != 200:
                    raise CollectionError("http_error", f"{where}: HTTP {response.status_code} {response.reason}")
                body = bytearray()
                for chunk in response.iter_content(_CHUNK):
                    body += chunk
                    if deadline.expired():
                        raise CollectionError("timeout", f"{where}: answer not complete within {deadline.seconds:.1f}s")
        except requests.exceptions.SSLError as error:
            raise CollectionError("tls", f"{where}: TLS error: {_reason(error)}") from None
        except requests.exceptions.Timeout:
            raise CollectionError("timeout", f"{where}: no answer within {deadline.seconds:.1f}s") from None
        except requests.exceptions.ConnectionError as error:
            if deadline.expired():
                raise CollectionError("timeout", f"{where}: no answer within {deadline.seconds:.1f}s") from None
            raise CollectionError("connection", f"{where}: cannot connect: {_reason(error)}") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError) as error:
            raise CollectionError("malformed", f"{where}: truncated answer: {_reason(error)}") from None
        try:
            return body.decode()
        except UnicodeDecodeError:
            raise CollectionError("malformed", f"{where}: answer is not UTF-8") from None

    def get_json(self, url: str, deadline: Deadline) -> Any:
        text = self.get_text(url, deadline)
        try:
            return json.loads(text)
        except ValueError as error:
            raise CollectionError("malformed", f"{safe_url(url)}: malformed JSON ({error})") from None


def _reason(error: Exception) -> str:
    """The cause of a requests error without urllib3's wrapping (``Failed to ...: Connection refused``)."""
    cause = error.args[0] if error.args else error
    cause = getattr(cause, "reason", cause)  # urllib3's MaxRetryError wraps the real one
    if isinstance(cause, Exception) and cause.args and isinstance(cause.args[0], str):
        cause = cause.args[0]
    return str(cause).rsplit("): ", 1)[-1]
