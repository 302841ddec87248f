"""The sidecar's scrape-time collection: each model's status, then TF Serving's own metrics.

A failure anywhere gives ``medobs_inference_up 0`` and a counted error of a bounded kind
(``connection``, ``timeout``, ``monitoring_disabled``, ``http_500``, ``malformed`` ...), with what
is still known exposed beside it: when only the metrics endpoint fails the model status stays;
when TF Serving does not answer at all every model reads ``model_available 0``, so one alert on
that series covers "the model is not serving"::

    medobs_inference_up 0.0
    medobs_inference_scrape_errors_total{kind="monitoring_disabled"} 3.0
    medobs_inference_model_available{model="resnet50_chest_xray"} 1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import requests
from prometheus_client.core import Metric

from exporters.inference.bridge import bridge_families
from exporters.inference.recorder import reason
from exporters.inference.status import VersionStatus, parse_status, status_families
from medobs.core import scrape_jobs
from medobs.core.catalog import inference as catalog
from medobs.core.runtime import CollectionError, Deadline, Exporter, safe_url

#: Where TF Serving serves Prometheus metrics unless its monitoring config says otherwise.
METRICS_PATH = scrape_jobs.job("ml-inference").metrics_path


class InferenceExporter(Exporter):
    """Model status and TF Serving's bridged metrics for ``models`` served at ``url``."""

    def __init__(self, url: str, models: Sequence[str], metrics_path: str = METRICS_PATH, ceiling: float = 10.0):
        super().__init__((catalog.UP, catalog.SCRAPE_DURATION, catalog.SCRAPE_ERRORS, catalog.LAST_SUCCESS), ceiling)
        self.url = url.rstrip("/")
        self.models = tuple(models)
        self.metrics_path = metrics_path
        self._session = requests.Session()

    def describe_backend(self) -> str:
        return f"TF Serving at {safe_url(self.url)}"

    def collect_families(self, deadline: Deadline) -> list[Metric]:
        try:
            versions = {model: self._versions(model, deadline) for model in self.models}
        except CollectionError as error:
            error.families = status_families({model: [] for model in self.models})
            raise
        families = status_families(versions)
        answer = self._get(self.metrics_path, deadline)
        if answer.status_code == 404:
            raise CollectionError(
                "monitoring_disabled",
                f"{safe_url(self.url)}{self.metrics_path} answered 404: enable prometheus_config in "
                "TF Serving's --monitoring_config_file (or pass its path with --metrics-path)",
                families,
            )
        if answer.status_code != 200:
            raise CollectionError(f"http_{answer.status_code}", self._http_error(answer), families)
        try:
            return families + bridge_families(answer.text)
        except ValueError as error:
            raise CollectionError(
                "malformed", f"unreadable metrics from {safe_url(self.url)}{self.metrics_path}: {error}", families
            ) from None

    def _versions(self, model: str, deadline: Deadline) -> list[VersionStatus]:
        answer = self._get(f"/v1/models/{model}", deadline)
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if answer.status_code == 404 and isinstance(payload, dict) and "error" in payload:
            return []  # TF Serving knows no version of the model (never loaded, or unloaded)
        if answer.status_code != 200:
            raise CollectionError(f"http_{answer.status_code}", self._http_error(answer))
        try:
            return parse_status(payload)
        except ValueError as error:
            raise CollectionError("malformed", f"{safe_url(answer.url)}: {error}") from None

    def _get(self, path: str, deadline: Deadline) -> requests.Response:
        url = self.url + path
        try:
            return self._session.get(url, timeout=deadline.remaining())
        except requests.Timeout:
            raise CollectionError("timeout", f"{safe_url(url)} did not answer in time") from None
        except requests.RequestException as error:
            raise CollectionError("connection", f"cannot reach {safe_url(url)}: {reason(error)}") from None

    @staticmethod
    def _http_error(answer: requests.Response) -> str:
        return f"{safe_url(answer.url)} answered HTTP {answer.status_code}: {answer.text[:200].strip()!r}"
