"""The shared exporter machinery over HTTP: text, OpenMetrics and gzip, each clean under promtool."""

import gzip
import subprocess
import time

import pytest
import requests

from medobs.core import runtime as base
from medobs.core.catalog import Metric
from tests.conftest import require_binary

# Catalog-shaped entries that are not registered in the catalog itself.
HEALTH = (
    Metric("medobs_test_up", "gauge", "Up.", "test"),
    Metric("medobs_test_scrape_duration_seconds", "gauge", "Duration.", "test", unit="seconds"),
    Metric("medobs_test_scrape_errors_total", "counter", "Errors.", "test", labels=("kind",)),
    Metric("medobs_test_last_success_timestamp_seconds", "gauge", "Last success.", "test", unit="seconds"),
)
VALUE = Metric("medobs_test_value", "gauge", "A value.", "test")


class FakeExporter(base.Exporter):
    """Counts collections; sleeps or fails on demand."""

    def __init__(self, ceiling=2.0):
        super().__init__(HEALTH, ceiling=ceiling)
        self.calls = 0
        self.delay = 0.0
        self.fail: base.CollectionError | None = None

    def collect_families(self, deadline):
        self.calls += 1
        time.sleep(self.delay)
        if self.fail:
            raise self.fail
        return [base.gauge(VALUE, value=42)]

    def describe_backend(self):
        return "fake backend"


@pytest.fixture
def server():
    exporter = FakeExporter()
    srv = base.start_server(exporter, ("127.0.0.1", 0))
    yield exporter, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_serves_text_openmetrics_and_gzip(server, tmp_path):
    exporter, url = server
    text = requests.get(f"{url}/metrics", timeout=5)
    assert text.headers["Content-Type"].startswith("text/plain")
    assert "medobs_test_value 42.0" in text.text
    openmetrics = requests.get(f"{url}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5)
    assert openmetrics.text.rstrip().endswith("# EOF")
    raw = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True).raw.read()
    assert b"medobs_test_up" in gzip.decompress(raw)
    assert requests.get(f"{url}/healthz", timeout=5).text == "ok\n"
    assert requests.get(f"{url}/nothing", timeout=5).status_code == 404
    exposition = tmp_path / "metrics.txt"
    exposition.write_text(text.text)
    check = subprocess.run(
        [require_binary("promtool"), "check", "metrics"], stdin=exposition.open(), capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr
