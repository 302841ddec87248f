"""The one client of Prometheus's HTTP API the package has: instant and range queries, series,
label values, rules, targets and alerts, each bounded by a timeout.

Errors are one line that names the server (without any user and password its URL carries): an
unreachable server or an answer that is not Prometheus's is a :class:`~medobs.UserError`; a
query Prometheus refuses is a :class:`QueryError`, which a caller may catch to go on with the
next query.
"""

from __future__ import annotations

from typing import Any

import requests

from medobs import UserError
from medobs.core.runtime import safe_url


class QueryError(UserError):
    """Prometheus refused a query (bad PromQL, too many points ...); ``reason`` is its own words."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class Prometheus:
    """A Prometheus server at ``url``; ``flag`` is how error messages name the URL's option."""

    def __init__(self, url: str, timeout: float = 60.0, flag: str = "--prometheus"):
        if not url.startswith(("http://", "https://")):
            raise UserError(f"{flag} {safe_url(url)!r}: expected a URL like http://127.0.0.1:9090")
        self.url = url.rstrip("/")
        self.shown = safe_url(self.url)
        self.timeout = timeout
        self.session = requests.Session()

    def api(self, path: str, params: dict[str, Any] | None = None, method: str = "GET") -> Any:
        """The ``data`` of a ``/api/v1/...`` answer (queries go as POST forms: "All" regexes are long)."""
        where = {"data": params} if method == "POST" else {"params": params}
        try:
            response = self.session.request(method, f"{self.url}{path}", timeout=self.timeout, **where)
        except requests.RequestException as error:
            reason = type(error).__name__.replace("Error", " error").lower()
            raise UserError(f"cannot reach Prometheus at {self.shown} ({reason}): is it running?") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") == "error":
            reason = str(body.get("error", "unknown error"))
            asked = (params or {}).get("query", path)
            raise QueryError(f"Prometheus at {self.shown} refused {asked!r}: {reason}", reason)
        if response.status_code != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise UserError(f"{self.shown} does not answer like Prometheus (HTTP {response.status_code} on {path})")
        return body.get("data")

    def _result(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        data = self.api(path, params, method="POST")
        if not isinstance(data, dict) or "result" not in data:
            raise UserError(f"Prometheus at {self.shown} answered {path} without data.result")
        return data["result"] if isinstance(data["result"], list) else []

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant vector (now, or at Unix time ``at``): ``[{"metric": {...}, "value": [t, "v"]}, ...]``."""
        return self._result("/api/v1/query", {"query": expr, **({"time": at} if at is not None else {})})

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """Matrix: ``[{"metric": {...}, "values": [[t, "v"], ...]}, ...]``."""
        return self._result("/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step})

    def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        """The label sets of the series ``match`` selects in the window."""
        return list(self.api("/api/v1/series", {"match[]": match, "start": start, "end": end}, method="POST"))

    def label_values(self, label: str, match: str | None, start: float, end: float) -> list[str]:
        """The values ``label`` takes (in the series ``match`` selects), sorted."""
        params: dict[str, Any] = {"start": start, "end": end, **({"match[]": match} if match else {})}
        return sorted(self.api(f"/api/v1/label/{label}/values", params))

    def rules(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The rule groups loaded (``kind``: ``alert`` or ``record`` for only those)."""
        return self.api("/api/v1/rules", {"type": kind} if kind else None)["groups"]

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets, with their health and last error."""
        return self.api("/api/v1/targets", {"state": "active"})["activeTargets"]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts pending or firing now."""
        return self.api("/api/v1/alerts")["alerts"]

