"""Every generated SLO rule evaluates without error on a real Prometheus, not only in promtool.

The rules of the platform's specs, of every Sloth example that compiles, of a ``sum by (service)``
SLI, of an unaggregated SLI and of the same SLO in two environments are loaded into one Prometheus
that scrapes, once a second, a stable and a canary service labelled as kube-prometheus-stack's
ServiceMonitors label them (``job``, ``namespace``, ``service``, ``pod``). Each serves a series
for every selector of every SLI query, so each query returns data, and a rule whose labels collide
("vector contains metrics with the same labelset after applying rule labels") or whose matching is
ambiguous fails every evaluation: /api/v1/rules reports it with health ``err``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import yaml

from medobs.core import promql as core_promql
from slo import files, promql, rules, spec
from slo.templates import EventsSli
from tests.slo_support import BY_SERVICE_SPEC, running_prometheus, sloth_examples, write_spec

SPECS = {
    "by-service.yaml": BY_SERVICE_SPEC,
    "unaggregated.yaml": """
version: prometheus/v1
service: shop
slos:
  - name: requests
    objective: 99
    sli:
      events:
        error_query: rate(http_requests_total{code=~"5.."}[{{.window}}])
        total_query: rate(http_requests_total[{{.window}}])
  - name: requests-raw
    objective: 99
    period: 7d
    sli:
      raw:
        error_ratio_query: rate(http_requests_total{code=~"5.."}[{{.window}}]) / ignoring (code) group_left rate(http_requests_total{code="200"}[{{.window}}])
""",
    **{f"{env}.yaml": f"""
version: prometheus/v1
service: shop
labels: {{env: {env}}}
slos:
  - name: availability
    objective: 99.9
    period: 28d
    sli:
      events:
        error_query: sum(rate(http_requests_total{{namespace="shop", code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total{{namespace="shop"}}[{{{{.window}}}}]))
    alerting: {{name: ShopAvailabilityBudgetBurn}}
""" for env in ("prod", "staging")},
}
TARGETS = {"stable": "shop-stable-6f7c9-abcde", "canary": "shop-canary-58d4b-fghij"}


def all_slos(tmp_path: Path) -> list[spec.SLO]:
    """Each SLO once: Sloth's examples repeat the same SLO in several formats."""
    local = [write_spec(tmp_path / "specs", text, name) for name, text in SPECS.items()]
    sources = [s for path in [*local, *sloth_examples()] for s in spec.load(path, path.name)] + files.platform_specs()
    unique: dict[tuple, spec.SLO] = {}
    for slo in spec.all_slos(sources):
        unique.setdefault((slo.service, slo.name, tuple(sorted(slo.labels.items()))), slo)
    return list(unique.values())


def exposed_series(slos: list[spec.SLO]) -> list[str]:
    """One series (name and labels, as exposition text) per selector of every SLI query."""
    found = set()
    for slo in slos:
        queries = (slo.sli.error_query, slo.sli.total_query) if isinstance(slo.sli, EventsSli) else (slo.sli.error_ratio_query,)
        for query in queries:
            for selector in core_promql.selectors(core_promql.parse(promql.at_window(query, "5m"))):
                name = core_promql.metric_name(selector)
                matchers = tuple(
                    promql.Matcher(m.name, core_promql.operator(m.op), m.value)  # type: ignore[arg-type]
                    for m in selector.matchers.matchers if m.name != "__name__"
                )
                found.add(promql.series_text(name, promql.series_labels(promql.Selector(name, matchers))))
                if name == "http_requests_total":  # good requests beside the bad ones
                    found.add('http_requests_total{code="200"}')
    return sorted(found)


@contextmanager
def exposition(series: list[str]) -> Iterator[str]:
    """A tiny exposition server: every series a counter growing 10 a second (the gauges too, which
    SLIs compare to thresholds); yields host:port."""
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            value = round((time.monotonic() - started) * 10, 3)
            body = "".join(f"{s} {value}\n" for s in series).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def prometheus_config(target: str, rule_files: list[Path]) -> str:
    jobs = [
        {
            "job_name": f"shop-{track}",
            "scrape_interval": "1s",
            "metrics_path": f"/{track}",
            # A series exposing a label the SLI selects on (job="api-gateway") keeps it.
            "honor_labels": True,
            "static_configs": [{
                "targets": [target],
                "labels": {"namespace": "shop", "service": f"shop-{track}", "pod": pod},
            }],
        }
        for track, pod in TARGETS.items()
    ]
    return yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": jobs,
    })


def write_rule_files(slos: list[spec.SLO], folder: Path) -> list[Path]:
    """The generated rule file of each service. Sloth's per-kind group intervals (minutes) are
    dropped so that every group is evaluated within the test."""
    by_service: dict[str, list[spec.SLO]] = {}
    for slo in slos:
        by_service.setdefault(slo.service, []).append(slo)
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for service, members in sorted(by_service.items()):
        content = rules.rule_file(members)
        for group in content["groups"]:
            group.pop("interval", None)
        path = folder / f"slo-{service}.yml"
        path.write_text(yaml.safe_dump(content, sort_keys=False))
        written.append(path)
    return written


def evaluated_rules(url: str) -> list[dict]:
    groups = requests.get(f"{url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    return [dict(rule, group=group["name"]) for group in groups for rule in group["rules"]]


def instant(url: str, query: str) -> float:
    """The value of a one-element instant query; 0 when it returns nothing."""
    result = requests.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_every_generated_rule_evaluates_without_error_on_a_real_prometheus(tmp_path):
    slos = all_slos(tmp_path)
    assert {"shop-availability-prod", "shop-availability-staging"} <= {
        ident for service in {s.service for s in slos}
        for ident in rules.slo_ids([s for s in slos if s.service == service])
    }
    rule_files = write_rule_files(slos, tmp_path / "rules")
    with exposition(exposed_series(slos)) as target, running_prometheus(
        tmp_path, prometheus_config(target, rule_files)
    ) as url:
        # Every counter SLI recorded (rate() has two samples), then two more evaluations.
        counted = len([s for s in slos if isinstance(s.sli, EventsSli) and not s.sli.slice_expr])
        deadline = time.monotonic() + 60
        while instant(url, "count(slo:sli_total_events:rate5m)") < counted:
            assert time.monotonic() < deadline, "the SLIs recorded no data within a minute"
            time.sleep(0.5)
        time.sleep(2.5)
        found = evaluated_rules(url)
        up = instant(url, "sum(up)")
    expected = sum(len(g["rules"]) for p in rule_files for g in yaml.safe_load(p.read_text())["groups"])
    assert len(found) == expected and up == len(TARGETS)
    broken = [(r["group"], r["name"], r.get("lastError")) for r in found if r["health"] != "ok" or r.get("lastError")]
    assert not broken, f"{len(broken)} of {len(found)} rules fail: {broken[:5]}"
