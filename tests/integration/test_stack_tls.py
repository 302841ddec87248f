"""``medobs stack up --tls``: the stack's exporters behind TLS and basic auth, and a real Prometheus
scraping them with the scrape config the stack renders (one exporter, the GPU's, and Prometheus:
not the whole stack, which tests/e2e runs)."""

from __future__ import annotations

import subprocess
import time

import requests
import yaml

from medobs import stack
from tests.conftest import REPO, free_port, require_binary


def test_prometheus_scrapes_the_exporters_over_tls_with_basic_auth(tmp_path):
    gpu_port = free_port()
    local = stack.Stack(tmp_path / "state", REPO / "build", port_offset=gpu_port - stack.scrape_jobs.job("gpu").port,
                        scrape_interval="1s", tls=True)
    stack.prepare_tls(local)
    tls = local.path("tls")
    assert (tls / "password").stat().st_mode & 0o777 == 0o600 and tls.stat().st_mode & 0o777 == 0o700
    password = (tls / "password").read_text()
    assert password not in (tls / "web.yml").read_text()  # only its bcrypt hash

    config = yaml.safe_load(local.prometheus_config().read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in stack.OWN_EXPORTER_JOBS:
        assert jobs[name]["scheme"] == "https" and jobs[name]["basic_auth"]["username"] == stack.SCRAPE_USER
    assert "scheme" not in jobs["node"] and "basic_auth" not in jobs["redis"]

    exporter = stack.component("gpu-exporter")
    process, _ = stack.start(local, exporter)
    prometheus = None
    try:
        stack.wait_ready(local, exporter, process, timeout=30)
        assert "--web.config.file" in process.cmdline()
        url = local.url("gpu") + "/metrics"
        assert url.startswith("https://")
        assert requests.get(url, verify=str(tls / "cert.pem"), timeout=5).status_code == 401
        with_auth = requests.get(url, verify=str(tls / "cert.pem"), auth=(stack.SCRAPE_USER, password), timeout=5)
        assert with_auth.status_code == 200 and "medobs_gpu_up 1.0" in with_auth.text  # --allow-no-gpu

        port = free_port()
        prometheus = subprocess.Popen(
            [require_binary("prometheus"), f"--config.file={local.prometheus_config()}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline, health = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            try:
                targets = requests.get(f"http://127.0.0.1:{port}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
                gpu = [t for t in targets if t["labels"]["job"] == "gpu"]
                health = (gpu[0]["health"], gpu[0]["lastError"]) if gpu else None
                if health and health[0] == "up":
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert health == ("up", ""), health
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=20)
        stack.stop(local, exporter)
