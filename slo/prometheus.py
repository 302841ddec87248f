"""A small client of Prometheus's HTTP API (``/api/v1/query``, ``/api/v1/query_range``) with
one-line errors: an unreachable server, a refused query or a broken answer is a UserError that
names the URL (without any user and password it carries)."""

from __future__ import annotations

from typing import Any

import requests

from medobs import UserError
from medobs.core.runtime import safe_url


class Prometheus:
    def __init__(self, url: str, timeout: float = 60.0):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"--prometheus {safe_url(url)!r}: expected a URL like http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.shown = safe_url(self.url)
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.RequestException as error:
            reason = type(error).__name__.replace("Error", " error").lower()
            raise UserError(f"cannot reach Prometheus at {self.shown} ({reason}): is it running?") from None
        try:
            body = response.json()
        except ValueError:
            raise UserError(
                f"Prometheus at {self.shown} answered {path} with HTTP {response.status_code} and no JSON: is it Prometheus?"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", "unknown error") if isinstance(body, dict) else "malformed answer"
            raise UserError(f"Prometheus at {self.shown} refused {params.get('query', path)!r}: {error}")
        data = body.get("data")
        if not isinstance(data, dict) or "result" not in data:
            raise UserError(f"Prometheus at {self.shown} answered {path} without data.result")
        return data["result"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """Instant vector: ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        result = self._get("/api/v1/query", {"query": expr, "time": at})
        return result if isinstance(result, list) else []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Matrix: ``[{"metric": {...}, "values": [[t, "v"], ...]}, ...]``."""
        result = self._get("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})
        return result if isinstance(result, list) else []


def total(result: list[dict[str, Any]]) -> float | None:
    """The sum of an instant vector's values, ignoring NaN; None when it is empty."""
    values = [float(item["value"][1]) for item in result]
    values = [v for v in values if v == v]
    return sum(values) if values else None
