"""`medobs slo report` against a real Prometheus: February 2024 backfilled with known traffic, errors,
slow requests, a queue backlog, dead letters and fired alerts (promtool tsdb create-blocks-from
openmetrics), then the report's numbers checked against what was put in."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import REPO, free_port, medobs
from tests.slo_support import AVAILABILITY_SPEC, backfilled_prometheus, write_spec
from tests.unit.test_slo_report import INCIDENT, prometheus, report  # noqa: F401 (prometheus is a fixture)

FEBRUARY_STEPS = 29 * 24 * 12  # 5-minute steps in February 2024


@pytest.fixture(scope="module")
def february(prometheus):
    data = report(prometheus, "--month", "2024-02")
    return {f"{s['service']}/{s['slo']}": s for s in data["slos"]}, data


def test_month_window_and_schema(february):
    slos, data = february
    assert data["schema"] == "medobs.slo.report/v1"
    assert (data["month"], data["period"], data["end"]) == ("2024-02", None, "2024-03-01T00:00:00Z")
    assert set(slos) == {"api-gateway/availability", "api-gateway/latency", "ml-inference/availability",
                         "ml-inference/latency", "study-processing/queue-freshness", "study-processing/dead-letters"}
    window = slos["api-gateway/availability"]["window"]
    assert window == {"label": "2024-02", "start": "2024-02-01T00:00:00Z", "end": "2024-03-01T00:00:00Z",
                      "seconds": 29 * 86400, "complete": True}


#: docs/slo.md's JSON table: each type (optionally "or null") and what a value of it is.
JSON_TYPES = {
    "string": lambda v: isinstance(v, str),
    "time": lambda v: isinstance(v, str) and v.endswith("Z") and datetime.fromisoformat(v.replace("Z", "+00:00")) is not None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "map": lambda v: isinstance(v, dict),  # free keys (labels): not checked one by one
    "list": lambda v: isinstance(v, list),
}


def documented_json_fields() -> dict[str, str]:
    """``{path: type}`` from the JSON fields table of docs/slo.md: ``slos[].window.start``;
    ``.end`` after it in the same cell is its sibling ``slos[].window.end``."""
    section = (REPO / "docs" / "slo.md").read_text().split("### JSON fields", 1)[1]
    table = section[section.index("\n| field |") + 1:].split("\n\n", 1)[0]
    rows = table.splitlines()[2:]  # after the header and its |---| line
    fields = {}
    for row in rows:
        cell, kind = (c.strip() for c in row.strip("|").split("|")[:2])
        first, *siblings = re.findall(r"`([^`]+)`", cell)
        parent = first.rsplit(".", 1)[0] + "." if "." in first else ""
        for path in (first, *(parent + s.removeprefix(".") for s in siblings)):
            fields[path] = kind
    return fields


def report_fields(value, path: str, documented: dict[str, str]) -> set[str]:
    """The paths of ``value`` (at ``path``) and below, each checked against ``documented``: an
    object's keys are exactly the documented ones, every value of its documented type."""
    if isinstance(value, list):
        return {found for item in value for found in report_fields(item, path, documented)}
    if not isinstance(value, dict) or documented.get(path) == "map":
        return set()
    prefix = f"{path}." if path else ""
    children = {p.removeprefix(prefix).removesuffix("[]"): p for p in documented
                if p.startswith(prefix) and "." not in p.removeprefix(prefix)}
    assert set(value) == set(children), f"{path or 'the report'}: keys {sorted(value)}, documented {sorted(children)}"
    found = set(children.values())
    for key, child in children.items():
        kind = documented[child]
        allowed = kind.removesuffix(" or null")
        assert (value[key] is None and kind.endswith(" or null")) or JSON_TYPES[allowed](value[key]), (child, value[key])
        found |= report_fields(value[key], child, documented)
    return found


def test_json_fields_are_exactly_the_documented_ones(february):
    """Every object of the report, each slos[] entry and its window, events, error_budget,
    alerts[] and burn_down[] among them, has exactly the fields of docs/slo.md's table, of the
    documented types; and February's report shows every documented field somewhere."""
    documented = documented_json_fields()
    assert {"slos[].window.complete", "slos[].error_budget.remaining_ratio", "slos[].alerts[].episodes",
            "slos[].burn_down[].remaining_ratio", "slos[].events.total"} <= set(documented)
    assert set(documented.values()) <= {*JSON_TYPES, *(f"{t} or null" for t in JSON_TYPES)}
    assert report_fields(february[1], "", documented) == set(documented)


def test_availability_counts_the_injected_errors(february):
    slo = february[0]["api-gateway/availability"]
    total, bad = 3000 * FEBRUARY_STEPS, 150 * 24
    assert slo["events"]["total"] == pytest.approx(total, rel=1e-9)
    assert slo["events"]["bad"] == pytest.approx(bad, rel=1e-9)
    assert slo["events"]["good"] == pytest.approx(total - bad, rel=1e-9)
    assert slo["objective"] == 0.999
    assert slo["sli"] == pytest.approx(1 - bad / total, rel=1e-12)
    budget = slo["error_budget"]
    assert budget["ratio"] == pytest.approx(0.001)
    assert budget["allowed_events"] == pytest.approx(0.001 * total, rel=1e-9)
    assert budget["consumed_events"] == pytest.approx(bad, rel=1e-9)
    assert budget["remaining_events"] == pytest.approx(0.001 * total - bad, rel=1e-9)
    assert budget["consumed_ratio"] == pytest.approx(bad / total / 0.001, rel=1e-9)  # 14.4%
    assert budget["remaining_ratio"] == pytest.approx(1 - bad / total / 0.001, rel=1e-9)
    assert slo["burn_rate"] == pytest.approx(budget["consumed_ratio"])
    assert slo["verdict"] == "met"


def test_alerts_that_fired_come_from_alerts_firing_only(february):
    alerts = february[0]["api-gateway/availability"]["alerts"]
    assert [(a["alertname"], a["labels"]["sloth_severity"], a["episodes"]) for a in alerts] == [
        ("ApiGatewayAvailabilityBudgetBurn", "page", 1), ("ApiGatewayAvailabilityBudgetBurn", "ticket", 1),
    ]
    page, ticket = alerts
    step = 251  # ceil(29 days / 10,000 points)
    first = datetime.fromisoformat(page["first_fired"].replace("Z", "+00:00"))
    assert INCIDENT[0] + timedelta(minutes=5) <= first <= INCIDENT[0] + timedelta(minutes=5, seconds=step)
    # Present 12:05 to 12:40, visible 5 more minutes (Prometheus's lookback): 40 minutes, give or take a step.
    assert 40 * 60 - step <= page["firing_seconds"] <= 45 * 60 + step
    assert page["labels"] == {"service": "api-gateway", "severity": "critical", "slo": "availability",
                              "sloth_id": "api-gateway-availability", "sloth_service": "api-gateway",
                              "sloth_severity": "page", "sloth_slo": "availability", "team": "platform"}
    assert february[0]["api-gateway/latency"]["alerts"] == []


def test_latency_time_slices_and_dead_letters(february):
    slos = february[0]
    latency = slos["api-gateway/latency"]
    slow, total = 15 * FEBRUARY_STEPS, 3000 * FEBRUARY_STEPS - 150 * 24
    assert latency["events"]["bad"] == pytest.approx(slow, rel=1e-9)
    assert latency["events"]["total"] == pytest.approx(total, rel=1e-9)
    assert latency["error_budget"]["consumed_ratio"] == pytest.approx(slow / total / 0.01, rel=1e-9)
    freshness = slos["study-processing/queue-freshness"]
    # One-minute slices from Feb 1 00:00 to Mar 1 00:00, both ends in: 180 of them in the backlog.
    assert freshness["events"] == {"good": 29 * 1440 + 1 - 180, "bad": 180, "total": 29 * 1440 + 1}
    assert freshness["verdict"] == "met"
    dead = slos["study-processing/dead-letters"]
    assert dead["error_ratio"] == pytest.approx(0.002, rel=1e-9)
    assert dead["error_budget"]["consumed_ratio"] == pytest.approx(2.0, rel=1e-9)
    assert dead["verdict"] == "breached"
    for key in ("ml-inference/availability", "ml-inference/latency"):
        assert slos[key]["verdict"] == "no_data" and slos[key]["sli"] is None and slos[key]["burn_down"] == []


def test_burn_down_falls_from_one_to_the_remaining_budget_at_the_incident(february):
    slo = february[0]["api-gateway/availability"]
    points = slo["burn_down"]
    assert points[0] == {"time": "2024-02-01T00:00:00Z", "remaining_ratio": 1.0}
    assert points[-1]["time"] == "2024-03-01T00:00:00Z" and len(points) == 121
    values = [p["remaining_ratio"] for p in points]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(slo["error_budget"]["remaining_ratio"], rel=1e-12)
    dropped = [p["time"] for p, previous in zip(points[1:], values) if p["remaining_ratio"] < previous - 1e-6]
    assert dropped and all(t.startswith("2024-02-10") for t in dropped)


def test_period_window_ends_where_asked(prometheus):
    gateway = str(REPO / "slo" / "specs" / "api-gateway.yaml")
    data = report(prometheus, "--period", "7d", "--end", "2024-02-15T00:00:00Z", "--spec", gateway)
    availability = data["slos"][0]
    assert availability["window"]["start"] == "2024-02-08T00:00:00Z" and availability["window"]["label"] == "7d"
    assert availability["events"]["total"] == pytest.approx(3000 * 7 * 288, rel=1e-9)
    assert availability["events"]["bad"] == pytest.approx(3600, rel=1e-9)
    quiet = report(prometheus, "--period", "7d", "--end", "2024-02-08T00:00:00Z", "--spec", gateway)
    assert quiet["slos"][0]["events"]["bad"] == 0 and quiet["slos"][0]["alerts"] == []
    assert quiet["slos"][0]["error_budget"]["remaining_ratio"] == 1.0


def test_markdown_and_html(prometheus, tmp_path):
    markdown = report(prometheus, "--month", "2024-02", fmt="md")
    assert markdown.startswith("# SLO report 2024-02\n")
    assert "| api-gateway/availability | 99.90% | 99.986% | 14.4% | 85.6% | 2 | met |" in markdown
    assert "| study-processing/dead-letters |" in markdown and "| breached |" in markdown
    out = tmp_path / "report.html"
    result = medobs("slo", "report", "--prometheus", prometheus, "--month", "2024-02", "--format", "html",
                    "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 4  # the four SLOs with traffic
    assert "<title>SLO report 2024-02</title>" in page
    assert "<polyline" in page and "ApiGatewayAvailabilityBudgetBurn" in page and "<script" not in page


def test_unreachable_prometheus_is_one_line_without_credentials(tmp_path):
    port = free_port()
    result = medobs("slo", "report", "--prometheus", f"http://admin:s3cret@127.0.0.1:{port}", "--month", "2024-02")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"medobs slo: error: cannot reach Prometheus at http://127.0.0.1:{port} (connection error): is it running?"
    ]


def test_a_refused_query_and_bad_arguments_are_one_line(prometheus, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text("""version: prometheus/v1
service: x
slos:
  - name: y
    objective: 99
    sli:
      events:
        error_query: sum(rate(x[{{.window}}])
        total_query: sum(rate(x[{{.window}}]))
""")
    result = medobs("slo", "report", "--prometheus", prometheus, "--spec", str(spec), "--month", "2024-02")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"Prometheus at {prometheus} refused" in result.stderr
    for args, message in ((["--month", "2024-13"], "--month '2024-13': expected a month like 2026-10"),
                          (["--period", "30x"], "--period: '30x' is not a duration"),
                          (["--period", "1d", "--end", "yesterday"], "--end 'yesterday': expected a time")):
        result = medobs("slo", "report", "--prometheus", prometheus, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


# --- counting events: what rate() and increase() get wrong over a window ----------------------

T0 = datetime(2024, 4, 1, tzinfo=UTC)
SCRAPE = 15
TWO_HOURS = 7200


def counting_openmetrics() -> str:
    """Two hours of 15 s scrapes of a shop's ``http_requests_total`` (one request a second):

    - target a: ``code="200"`` from 1,000 (history); the process restarts right after the
      60-minute scrape (the next one reads 15); not scraped from 70 to 80 minutes (``up`` 0),
      counting on meanwhile (600 requests);
    - ``code="500"`` on a: created by the first 500 after the 30-minute scrape, which reads 6,
      then 3 more per scrape until 40 minutes (123 in all); gone with the restart;
    - target b: scraped from 90 minutes on, its counter at 1,000,000 of history, then 15 per scrape.
    """
    lines = []

    def add(series: str, value: float, offset: int) -> None:
        lines.append(f"{series} {value!r} {int(T0.timestamp()) + offset}")

    a, b = 'job="shop",instance="a:80"', 'job="shop",instance="b:80"'
    for t in range(0, TWO_HOURS + 1, SCRAPE):
        outage = 4200 < t < 4800
        add(f"up{{{a}}}", 0.0 if outage else 1.0, t)
        if not outage:
            add(f'http_requests_total{{{a},code="200"}}', float(1000 + t if t <= 3600 else t - 3600), t)
        if 1800 < t <= 3600:
            add(f'http_requests_total{{{a},code="500"}}', float(6 + 3 * (min(t, 2400) - 1815) // SCRAPE), t)
        if t >= 5400:
            add(f"up{{{b}}}", 1.0, t)
            add(f'http_requests_total{{{b},code="200"}}', float(1_000_000 + t - 5400), t)
    lines.sort(key=lambda line: (line.split(" ")[0], int(line.split(" ")[-1])))
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def counting_prometheus(tmp_path_factory):
    with backfilled_prometheus(tmp_path_factory.mktemp("counting-prometheus"), counting_openmetrics()) as url:
        yield url


def shop_report(prometheus, spec, period: str, end: datetime) -> dict:
    data = report(prometheus, "--spec", str(spec), "--period", period, "--end", end.isoformat())
    return data["slos"][0]


def test_counter_events_count_new_series_resets_and_gaps_exactly(counting_prometheus, tmp_path):
    """Over the two hours: 7,200 requests of a (the restart and the outage lose none), 123 500s
    from zero (their series is new, its target was up), and 1,800 of b, whose 1,000,000 of
    history are not counted (a new target, not a new series)."""
    spec = write_spec(tmp_path, AVAILABILITY_SPEC)
    slo = shop_report(counting_prometheus, spec, "2h", T0 + timedelta(hours=2))
    assert slo["events"] == {"good": 7200.0 + 1800, "bad": 123.0, "total": 7200.0 + 123 + 1800}
    assert slo["burn_down"][-1]["remaining_ratio"] == pytest.approx(slo["error_budget"]["remaining_ratio"], rel=1e-12)
    # what the report replaces: increase() misses the new series' first scrape
    lost = requests.get(f"{counting_prometheus}/api/v1/query", params={
        "query": 'sum(increase(http_requests_total{code="500"}[2h]))', "time": (T0 + timedelta(hours=2)).timestamp(),
    }, timeout=30).json()["data"]["result"]
    assert float(lost[0]["value"][1]) < 123


def test_adjacent_windows_add_up_to_the_whole(counting_prometheus, tmp_path):
    """Split between two scrapes, 50m7s and 1h9m53s: every event lands in exactly one window."""
    spec = write_spec(tmp_path, AVAILABILITY_SPEC)
    split = T0 + timedelta(minutes=50, seconds=7)
    first = shop_report(counting_prometheus, spec, "50m7s", split)
    second = shop_report(counting_prometheus, spec, "1h9m53s", T0 + timedelta(hours=2))
    assert first["events"] == {"good": 3000.0, "bad": 123.0, "total": 3123.0}  # scrapes up to 50:00
    assert {k: first["events"][k] + second["events"][k] for k in first["events"]} == {
        "good": 9000.0, "bad": 123.0, "total": 9123.0}
