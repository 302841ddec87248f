"""`medobs slo report` counts events per step only for rate and increase of selectors, in valid PromQL."""

import json
from datetime import UTC, datetime, timedelta

import promql_parser
import pytest

from slo import promql
from slo import spec as spec_module
from slo.templates import EventsSli
from tests.conftest import REPO, medobs
from tests.slo_support import backfilled_prometheus, sloth_examples

START = datetime(2024, 1, 31, 23, 0, tzinfo=UTC)
END = datetime(2024, 3, 1, 1, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
INCIDENT = (datetime(2024, 2, 10, 12, 0, tzinfo=UTC), datetime(2024, 2, 10, 14, 0, tzinfo=UTC))
BACKLOG = (datetime(2024, 2, 20, 8, 0, tzinfo=UTC), datetime(2024, 2, 20, 11, 0, tzinfo=UTC))

GATEWAY = 'job="api-gateway", method="GET", uri="/api/v1/studies"'
QUEUE = 'vhost="/", queue="medical_data", role="work"'
DLQ = 'vhost="/", queue="medical_data.dlq", role="dlq"'
PAGE = ('ALERTS{alertname="ApiGatewayAvailabilityBudgetBurn", alertstate="firing", service="api-gateway", '
        'severity="critical", slo="availability", sloth_id="api-gateway-availability", sloth_service="api-gateway", '
        'sloth_severity="page", sloth_slo="availability", team="platform"}')
TICKET = PAGE.replace('sloth_severity="page"', 'sloth_severity="ticket"').replace("critical", "warning")
PENDING = 'ALERTS{alertname="Other", alertstate="pending", service="api-gateway", slo="availability"}'


def moments():
    moment = START
    while moment <= END:
        yield moment
        moment += STEP


def during(moment, span):
    return span[0] < moment <= span[1]


def openmetrics() -> str:
    """5-minute samples: 3,000 gateway requests each (150 of them 5xx during the 2-hour incident,
    15 of the good ones slower than 1 s), 100 studies published, 0.2 of them dead-lettered, the
    oldest message 30 s old except during the 3-hour backlog (600 s)."""
    series: dict[str, list[tuple[float, float]]] = {}

    def add(name, value, moment):
        series.setdefault(name, []).append((value, moment.timestamp()))

    totals: dict[str, float] = {}
    for moment in moments():
        bad = 150 if during(moment, INCIDENT) else 0
        steps = {
            f'http_server_requests_seconds_count{{{GATEWAY}, status="200", outcome="SUCCESS"}}': 3000 - bad,
            f'http_server_requests_seconds_bucket{{{GATEWAY}, status="200", outcome="SUCCESS", le="1.0"}}': 3000 - bad - 15,
            f'http_server_requests_seconds_bucket{{{GATEWAY}, status="200", outcome="SUCCESS", le="+Inf"}}': 3000 - bad,
            f'http_server_requests_seconds_count{{{GATEWAY}, status="500", outcome="SERVER_ERROR"}}': bad,
            f"medobs_queue_published_messages_total{{{QUEUE}}}": 100,
            f"medobs_queue_published_messages_total{{{DLQ}}}": 0.2,
        }
        for name, increment in steps.items():
            totals[name] = totals.get(name, 0) + (increment if moment > START else 0)
            add(name, totals[name], moment)
        add(f"medobs_queue_messages{{{QUEUE}}}", 3, moment)
        add(f"medobs_queue_oldest_message_age_seconds{{{QUEUE}}}", 600 if BACKLOG[0] <= moment < BACKLOG[1] else 30, moment)
        if INCIDENT[0] + timedelta(minutes=5) <= moment <= INCIDENT[0] + timedelta(minutes=40):
            add(PAGE, 1, moment)
        if INCIDENT[0] + timedelta(minutes=30) <= moment <= INCIDENT[0] + timedelta(minutes=150):
            add(TICKET, 1, moment)
        if INCIDENT[0] <= moment <= INCIDENT[0] + timedelta(minutes=5):
            add(PENDING, 1, moment)
    # OpenMetrics writes label sets without spaces.
    lines = [f"{name.replace(', ', ',')} {value!r} {int(stamp)}" for name, samples in series.items() for value, stamp in samples]
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with backfilled_prometheus(tmp_path_factory.mktemp("report-prometheus"), openmetrics()) as url:
        yield url


def report(prometheus, *args, fmt="json"):
    result = medobs("slo", "report", "--prometheus", prometheus, "--format", fmt, *args, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if fmt == "json" else result.stdout


@pytest.mark.parametrize("query", [
    "sum(irate(x[{{.window}}]))",
    "sum(rate(x[{{.window}}] offset 1h))",
    "sum_over_time((max(x) > bool 1)[{{.window}}:1m])",
    "sum(rate(x[{{.window}}])) / sum(avg_over_time(y[{{.window}}]))",
])
def test_only_rate_and_increase_of_selectors_are_counted_per_step(query):
    assert promql.step_events(query, "60s") is None


def test_every_counter_sli_is_counted_per_step_in_valid_promql():
    """The platform's specs and Sloth's examples: each rate() / increase() SLI query, rewritten,
    parses as PromQL and no longer reads a window."""
    files = sorted((REPO / "slo" / "specs").glob("*.yaml")) + sloth_examples()
    counted = 0
    for slo in spec_module.all_slos([s for path in files for s in spec_module.load(path, path.name)]):
        if not isinstance(slo.sli, EventsSli) or slo.sli.scale != "rate":
            continue
        for query in (slo.sli.error_query, slo.sli.total_query):
            rewritten = promql.step_events(query, "5m")
            assert rewritten is not None and "{{" not in rewritten, query
            promql_parser.parse(rewritten)
            counted += 1
    assert counted >= 20
