"""The shared exporter machinery over HTTP: text, OpenMetrics and gzip, each clean under promtool."""

import gzip
import subprocess

import requests

from tests.conftest import require_binary
from tests.unit.test_exporter_base import server  # noqa: F401 (server is a fixture)


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
