"""`medobs slo import-openslo`: OpenSLO v1 SLO / SLI objects into specs that compile, and one clear
line for what cannot be converted."""


import dataclasses

import pytest
import yaml

from slo import spec
from tests.conftest import medobs
from tests.slo_support import assert_one_line_error, write_spec

OPENSLO = """
apiVersion: openslo/v1
kind: DataSource
metadata: {name: prom}
spec:
  type: Prometheus
  connectionDetails: {url: http://prometheus:9090}
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: checkout-errors}
spec:
  ratioMetric:
    counter: true
    bad:
      metricSource:
        metricSourceRef: prom
        spec:
          query: http_requests_total{job="checkout", code=~"5.."}
    total:
      metricSource:
        metricSourceRef: prom
        spec:
          query: sum(http_requests_total{job="checkout"})
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability, displayName: Checkout availability}
spec:
  service: checkout
  indicatorRef: checkout-errors
  timeWindow:
    - duration: 4w
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Checkout requests
      target: 0.995
  alertPolicies:
    - alertPolicyRef: pager
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-latency}
spec:
  description: Checkout answers fast
  service: checkout
  indicator:
    metadata: {name: checkout-fast}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_request_duration_seconds_bucket{job="checkout", le="0.5"}[{{.window}}]))
        total:
          metricSource:
            type: Prometheus
            spec:
              query: sum(rate(http_request_duration_seconds_count{job="checkout"}[{{.window}}]))
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: Fast
      targetPercent: 99
    - displayName: Very fast
      targetPercent: 95
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: pool-health}
spec:
  service: pool
  indicator:
    metadata: {name: pool-ratio}
    spec:
      ratioMetric:
        rawType: success
        raw:
          metricSource:
            type: prometheus
            spec:
              query: pool_healthy_ratio
  timeWindow:
    - duration: 7d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - target: 0.9
"""


@pytest.mark.slow
def test_conversion_compiles_and_keeps_the_meaning(tmp_path):
    source = write_spec(tmp_path, OPENSLO, "openslo.yaml")
    result = medobs("slo", "import-openslo", str(source), "--out", str(tmp_path / "specs" / "checkout.yaml"), check=True)
    assert "note: checkout-availability: alertPolicies are not converted" in result.stderr
    documents = list(yaml.safe_load_all((tmp_path / "specs" / "checkout.yaml").read_text()))
    by_service = {d["service"]: d for d in documents}
    availability, fast, very_fast = by_service["checkout"]["slos"]
    assert availability == {
        "name": "checkout-availability", "objective": 99.5, "period": "28d", "description": "Checkout availability",
        "sli": {"events": {
            "error_query": 'sum(rate(http_requests_total{job="checkout", code=~"5.."}[{{.window}}]))',
            "total_query": 'sum(rate(http_requests_total{job="checkout"}[{{.window}}]))',
        }},
    }
    assert (fast["name"], fast["objective"], very_fast["name"], very_fast["objective"]) == (
        "checkout-latency-fast", 99.0, "checkout-latency-very-fast", 95.0)
    assert fast["sli"]["events"]["error_query"] == (
        '(sum(rate(http_request_duration_seconds_count{job="checkout"}[{{.window}}]))) - '
        '(sum(rate(http_request_duration_seconds_bucket{job="checkout", le="0.5"}[{{.window}}])))'
    )
    (pool,) = by_service["pool"]["slos"]
    assert pool["sli"] == {"raw": {"error_ratio_query": "1 - (avg_over_time((pool_healthy_ratio)[{{.window}}:1m]))"}}
    assert pool["period"] == "7d" and pool["objective"] == 90.0
    loaded = spec.load_all([tmp_path / "specs"])
    assert len(spec.all_slos(loaded)) == 4
    medobs("slo", "build", str(tmp_path / "specs"), "--out", str(tmp_path / "out"), "--verify", check=True, timeout=300)


def test_stdout_and_no_overwrite_without_force(tmp_path):
    source = write_spec(tmp_path, OPENSLO, "openslo.yaml")
    printed = medobs("slo", "import-openslo", str(source), check=True).stdout
    assert printed.startswith(f"# Converted from {source} by `medobs slo import-openslo`.")
    target = tmp_path / "mine.yaml"
    target.write_text("keep me\n")
    result = medobs("slo", "import-openslo", str(source), "--out", str(target))
    assert result.returncode == 2 and "exists: pass --force" in result.stderr
    assert target.read_text() == "keep me\n"
    medobs("slo", "import-openslo", str(source), "--out", str(target), "--force", check=True)
    assert target.read_text() == printed


SLO = """apiVersion: openslo/v1
kind: SLO
metadata: {name: a}
spec:
  service: s
  indicator:
    metadata: {name: i}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: errors_total}}}
        total: {metricSource: {type: Prometheus, spec: {query: requests_total}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.99}]
"""

BAD = {
    "version": (SLO.replace("openslo/v1", "openslo/v2", 1),
                r"apiVersion: 'openslo/v2' is not supported; expected 'openslo/v1' or 'openslo/v1alpha'"),
    "threshold": (SLO.replace("ratioMetric:", "thresholdMetric: {metricSource: {spec: {query: x}}}\n      ratioMetric:"),
                  r"spec\.indicator\.spec\.thresholdMetric: is not supported"),
    "calendar": (SLO.replace("isRolling: true", "isRolling: false"), r"spec\.timeWindow\[0\]: calendar-aligned windows"),
    "duration": (SLO.replace("duration: 30d", "duration: 1M"), r"spec\.timeWindow\[0\]\.duration: '1M' is not one of"),
    "timeslices": (SLO.replace("Occurrences", "Timeslices"), r"spec\.budgetingMethod: 'Timeslices' is not supported"),
    "datadog": (SLO.replace("type: Prometheus, spec: {query: errors_total}", "type: Datadog, spec: {query: x}"),
                r"spec\.indicator\.spec\.ratioMetric\.bad\.metricSource\.type: 'Datadog' is not supported"),
    "target": (SLO.replace("target: 0.99", "target: 1.5"), r"spec\.objectives\[0\]\.target: 1\.5 is outside"),
    "query": (SLO.replace("query: errors_total", "query: 'rate(x[5m]) / 2'"),
              r"spec\.indicator\.spec\.ratioMetric\.bad\.metricSource\.spec\.query: a counter query must be a series selector"),
    "ref": (SLO.split("  indicator:")[0] + "  indicatorRef: nope\n" + SLO.split("requests_total}}}\n")[1],
            r"spec\.indicatorRef: no kind: SLI named 'nope'"),
    "unknown": (SLO.replace("budgetingMethod", "budgetMethod"), r"spec\.budgetMethod: unknown field"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_unconvertible_input_is_one_line_naming_the_field(tmp_path, case):
    text, pattern = BAD[case]
    result = medobs("slo", "import-openslo", str(write_spec(tmp_path, text, "in.yaml")))
    assert_one_line_error(result, r"\S+in\.yaml: " + pattern)


ALPHA = """apiVersion: openslo/v1alpha
kind: SLO
metadata: {name: a, displayName: A}
spec:
  service: s
  objectives:
    - ratioMetrics:
        good: {source: prometheus, queryType: promql, query: 'sum(rate(ok_total[{{.window}}]))'}
        total: {source: prometheus, queryType: promql, query: requests_total}
      target: 0.99
  timeWindows:
    - count: 4
      unit: Week
"""

BAD_ALPHA = {
    "unit": (ALPHA.replace("unit: Week", "unit: Month"),
             r"spec\.timeWindows\[0\]: expected a whole count of Day or Week, got 4 'Month'"),
    "period": (ALPHA.replace("count: 4", "count: 2"), r"spec\.timeWindows\[0\]: 2 Week is not one of 7d, 28d, 30d"),
    "calendar": (ALPHA.replace("unit: Week", "unit: Week\n      isRolling: false"),
                 r"spec\.timeWindows\[0\]: calendar-aligned windows are not supported"),
    "source": (ALPHA.replace("source: prometheus, queryType: promql, query: requests_total", "source: datadog, query: x"),
               r"spec\.objectives\[0\]\.ratioMetrics\.total\.source: 'datadog' is not supported: only prometheus"),
    "threshold": (ALPHA.replace("  objectives:", "  indicator: {thresholdMetric: {source: prometheus, query: x}}\n  objectives:"),
                  r"spec\.indicator: thresholdMetric indicators are not supported"),
    "no ratio": (ALPHA.replace("ratioMetrics", "ratioMetric"),
                 r"spec\.objectives\[0\]\.ratioMetric: unknown field; expected one of: displayName, target, op"),
    "query": (ALPHA.replace("query: requests_total", "query: 'rate(x[5m]) / 2'"),
              r"spec\.objectives\[0\]\.ratioMetrics\.total\.query: a counter query must be a series selector"),
}


@pytest.mark.parametrize("case", list(BAD_ALPHA), ids=list(BAD_ALPHA))
def test_unconvertible_v1alpha_is_one_line_naming_the_field_in_import_and_build(tmp_path, case):
    text, pattern = BAD_ALPHA[case]
    path = write_spec(tmp_path, text, "in.yaml")
    assert_one_line_error(medobs("slo", "import-openslo", str(path)), r"\S+in\.yaml: " + pattern)
    assert_one_line_error(medobs("slo", "build", str(path), "--out", str(tmp_path / "out")), r"\S+in\.yaml: " + pattern)


def test_v1alpha_converts_like_sloth_reads_it(tmp_path):
    printed = medobs("slo", "import-openslo", str(write_spec(tmp_path, ALPHA, "in.yaml")), check=True).stdout
    (document,) = list(yaml.safe_load_all(printed))
    assert document == {"version": "prometheus/v1", "service": "s", "slos": [{
        "name": "a", "objective": 99.0, "period": "28d", "description": "A",
        "sli": {"events": {"error_query": "(sum(rate(requests_total[{{.window}}]))) - (sum(rate(ok_total[{{.window}}])))",
                           "total_query": "sum(rate(requests_total[{{.window}}]))"}},
    }]}


def test_slo_build_reads_openslo_files_directly(tmp_path):
    source = write_spec(tmp_path, OPENSLO, "openslo.yaml")
    result = medobs("slo", "build", str(source), "--out", str(tmp_path / "out"), check=True)
    assert "4 SLOs" in result.stdout
    assert (tmp_path / "out" / "rules" / "slo-checkout.yml").exists() and (tmp_path / "out" / "rules" / "slo-pool.yml").exists()
    imported = write_spec(tmp_path / "imported", medobs("slo", "import-openslo", str(source), check=True).stdout)
    direct = [dataclasses.replace(slo, source="") for slo in spec.all_slos(spec.load(source))]
    assert direct == [dataclasses.replace(slo, source="") for slo in spec.all_slos(spec.load(imported))]


def test_an_error_found_after_conversion_says_the_spec_was_converted(tmp_path):
    text = ALPHA.replace("query: requests_total", "query: 'sum(rate(x_total{a=\"{{.b}}\"}[{{.window}}]))'")
    result = medobs("slo", "build", str(write_spec(tmp_path, text, "in.yaml")), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, r"\S+in\.yaml \(converted from OpenSLO\): slos\[0\]\.sli\.events\.error_query: "
                                  r"uses \{\{\.b\}\}; only \{\{\.window\}\} is expanded")
