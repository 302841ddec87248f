"""The shared exporter machinery: single flight, timeouts, health metrics, HTTP, flags, secrets."""

import argparse
import logging
import platform
import threading
import time

import pytest
import requests

from medobs import UserError
from medobs.core import runtime as base
from medobs.core.catalog import Metric

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


def samples(families) -> dict[str, float]:
    out = {}
    for family in families:
        for sample in family.samples:
            key = sample.name + "".join(f"{{{k}={v}}}" for k, v in sorted(sample.labels.items()))
            out[key] = sample.value
    return out


def test_success_exposes_values_and_health():
    exporter = FakeExporter()
    values = samples(exporter.scrape())
    assert values["medobs_test_value"] == 42
    assert values["medobs_test_up"] == 1
    assert values["medobs_test_last_success_timestamp_seconds"] == pytest.approx(time.time(), abs=5)


def test_concurrent_scrapes_share_one_collection():
    exporter = FakeExporter()
    exporter.delay = 0.3
    results = []
    threads = [threading.Thread(target=lambda: results.append(exporter.scrape())) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert exporter.calls == 1
    assert all(samples(r)["medobs_test_value"] == 42 for r in results)


def test_slow_backend_gives_up_zero_and_one_timeout(caplog):
    exporter = FakeExporter(ceiling=0.2)
    exporter.delay = 0.6
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        values = samples(exporter.scrape())
    assert time.monotonic() - started < 0.5
    assert values["medobs_test_up"] == 0
    assert values["medobs_test_scrape_errors_total{kind=timeout}"] == 1
    assert "medobs_test_value" not in values
    time.sleep(0.6)
    exporter.delay = 0
    assert samples(exporter.scrape())["medobs_test_up"] == 1
    assert [r.message for r in caplog.records] == ["fake backend: timeout error: no answer within 0.2s"]


def test_errors_are_counted_by_kind_and_logged_once_per_change(caplog):
    exporter = FakeExporter()
    exporter.fail = base.CollectionError("http_401", "401 Unauthorized from http://broker:15672/api/queues")
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            values = samples(exporter.scrape())
        exporter.fail = None
        assert samples(exporter.scrape())["medobs_test_up"] == 1
    assert values["medobs_test_up"] == 0
    assert values["medobs_test_scrape_errors_total{kind=http_401}"] == 3
    assert [r.message for r in caplog.records] == [
        "fake backend: http_401 error: 401 Unauthorized from http://broker:15672/api/queues",
        "fake backend: collecting again",
    ]


def test_what_a_failed_collection_still_knows_is_exposed_beside_up_0():
    exporter = FakeExporter()
    exporter.fail = base.CollectionError("http_404", "metrics endpoint off", [base.gauge(VALUE, value=7)])
    values = samples(exporter.scrape())
    assert values["medobs_test_value"] == 7
    assert values["medobs_test_up"] == 0
    assert values["medobs_test_scrape_errors_total{kind=http_404}"] == 1


def test_a_bug_in_a_collector_is_reported_not_raised():
    exporter = FakeExporter()
    exporter.fail = None
    exporter.collect_families = lambda deadline: 1 / 0
    values = samples(exporter.scrape())
    assert values["medobs_test_up"] == 0
    assert values["medobs_test_scrape_errors_total{kind=internal}"] == 1


@pytest.mark.parametrize("header,expected", [(None, None), ("", None), ("abc", None), ("10", 9.5), ("0.3", 0.1)])
def test_scrape_timeout_header(header, expected):
    assert base.scrape_timeout(header) == expected


@pytest.fixture
def server():
    exporter = FakeExporter()
    srv = base.start_server(exporter, ("127.0.0.1", 0))
    yield exporter, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_http_honours_the_prometheus_timeout_header(server):
    exporter, url = server
    exporter.delay = 3
    started = time.monotonic()
    body = requests.get(f"{url}/metrics", headers={base.TIMEOUT_HEADER: "0.8"}, timeout=5).text
    assert time.monotonic() - started < 1.5
    assert "medobs_test_up 0.0" in body


def test_listen_address():
    assert base.listen_address("127.0.0.1:9419") == ("127.0.0.1", 9419)
    assert base.listen_address(":9400") == ("0.0.0.0", 9400)
    assert base.listen_address("[::1]:9400") == ("::1", 9400)
    for bad in ("9419", "host:", "host:99999", "host:abc"):
        with pytest.raises(argparse.ArgumentTypeError):
            base.listen_address(bad)


def test_listen_on_a_busy_port_is_a_user_error(server):
    _, url = server
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
        base.start_server(FakeExporter(), ("127.0.0.1", port))


def test_read_secret_prefers_file_then_env(tmp_path, monkeypatch):
    secret_file = tmp_path / "password"
    secret_file.write_text("from-file\n")
    monkeypatch.setenv("BROKER_PASSWORD", "from-env")
    assert base.read_secret("BROKER_PASSWORD") == "from-env"
    monkeypatch.setenv("BROKER_PASSWORD_FILE", str(secret_file))
    assert base.read_secret("BROKER_PASSWORD") == "from-file"
    assert base.read_secret("NOT_SET_ANYWHERE") is None
    with pytest.raises(UserError, match="cannot read the secret file"):
        base.read_secret("X", tmp_path / "missing")


def test_safe_url_drops_credentials():
    assert base.safe_url("http://guest:s3cret@127.0.0.1:15672/api") == "http://127.0.0.1:15672/api"
    assert base.safe_url("https://broker/api") == "https://broker/api"


def test_a_collection_stuck_past_its_deadline_does_not_capture_later_scrapes():
    exporter = FakeExporter(ceiling=0.3)
    release = threading.Event()
    stuck = {"first": True}

    def collect(deadline):
        exporter.calls += 1
        if stuck.pop("first", False):
            release.wait(10)  # the backend hangs on the first collection only
        return [base.gauge(VALUE, value=42)]

    exporter.collect_families = collect
    assert samples(exporter.scrape())["medobs_test_up"] == 0  # timed out
    values = samples(exporter.scrape())  # the backend answers again: a fresh collection, not the stuck one
    assert values["medobs_test_up"] == 1 and values["medobs_test_value"] == 42
    release.set()


def test_collections_left_running_are_bounded():
    exporter = FakeExporter(ceiling=0.1)
    release = threading.Event()

    def collect(deadline):
        exporter.calls += 1
        release.wait(10)  # a backend that never answers
        return []

    exporter.collect_families = collect
    for _ in range(6):
        assert samples(exporter.scrape())["medobs_test_up"] == 0
    # the first, then MAX_ABANDONED more; later scrapes wait on the last one
    assert exporter.calls == 1 + base.MAX_ABANDONED
    release.set()
    time.sleep(0.1)
    assert samples(exporter.scrape())["medobs_test_up"] == 1


def test_self_metrics_build_info_process_and_gc(server):
    _, url = server
    body = requests.get(f"{url}/metrics", timeout=5).text
    assert f'medobs_test_build_info{{python="{platform.python_version()}",revision="' in body
    assert f'version="{base.__version__}"}} 1.0' in body
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "python_gc_collections_total"):
        assert f"\n{name}" in body


def test_head_and_gzip_at_level_1(server):
    _, url = server
    head = requests.head(f"{url}/metrics", timeout=5)
    assert head.status_code == 200 and head.content == b"" and int(head.headers["Content-Length"]) > 100
    raw = requests.get(f"{url}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=5, stream=True).raw.read()
    assert raw[:2] == b"\x1f\x8b" and raw[8] == 4  # gzip's XFL byte: 4 is "fastest" (level 1), 2 is level 9


@pytest.mark.parametrize("text,size", [
    ("65536", 65536), ("64KiB", 65536), ("512MiB", 512 << 20), ("1 GiB", 1 << 30), ("16kib", 16384),
    ("100B", 100), ("500KB", 500_000), ("2mb", 2_000_000),
])
def test_size_flags_take_bytes_decimal_or_binary_units(text, size):
    assert base.byte_size(text) == size


@pytest.mark.parametrize("text", ["0", "-1", "12 parsecs", "MiB", "1.5MiB", ""])
def test_size_flags_refuse_what_is_not_a_size(text):
    with pytest.raises(argparse.ArgumentTypeError):
        base.byte_size(text)


def test_sizes_are_shown_the_way_the_flags_take_them():
    assert [base.format_size(n) for n in (512 << 20, 16384, 1 << 30, 100)] == ["512MiB", "16KiB", "1GiB", "100"]
