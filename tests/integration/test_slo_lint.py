"""`medobs slo lint` against a real Prometheus holding the last half hour of a shop's requests:
a misspelled metric, label or total query is an error naming the SLO and the query (exit 1); an
error query with no error yet is a warning; specs that select series pass with a summary."""

import time

import pytest

from tests.conftest import free_port, medobs
from tests.slo_support import assert_one_line_error, backfilled_prometheus, write_spec

SPEC = """version: prometheus/v1
service: {service}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate({error}[{{{{.window}}}}]))
        total_query: sum(rate({total}[{{{{.window}}}}]))
"""


SHOP_ERRORS = 'http_requests_total{job="shop", code=~"5.."}'
SHOP_TOTAL = 'http_requests_total{job="shop"}'


def spec(service: str, error: str = SHOP_ERRORS, total: str = SHOP_TOTAL) -> str:
    return SPEC.format(service=service, error=error, total=total)


def openmetrics(now: int) -> str:
    """Counters of the last 30 minutes: job shop answers 200 and 500, job quiet only 200."""
    lines = ["# TYPE http_requests counter"]
    for job, code in (("shop", "200"), ("shop", "500"), ("quiet", "200")):
        for step, at in enumerate(range(now - 1800, now - 60, 60)):
            lines.append(f'http_requests_total{{job="{job}",code="{code}"}} {step * 10} {at}')
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with backfilled_prometheus(tmp_path_factory.mktemp("lint"), openmetrics(int(time.time()))) as url:
        yield url


def lint(url: str, *specs, extra: tuple[str, ...] = ()):
    return medobs("slo", "lint", "--prometheus", url, *map(str, specs), *extra)


def test_specs_whose_selectors_match_pass_with_a_summary(prometheus, tmp_path):
    path = write_spec(tmp_path, spec("shop"))
    result = lint(prometheus, path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "1 SLO, 2 series selectors: every selector matches series"


def test_a_misspelled_error_query_is_an_error_naming_the_slo_and_the_query(prometheus, tmp_path):
    good = write_spec(tmp_path, spec("shop"), "good.yaml")
    bad = write_spec(tmp_path, spec("cart", error='http_request_total{job="shop", code=~"5.."}'), "bad.yaml")
    result = lint(prometheus, good, bad)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == (f"error: {bad}: SLO cart/availability: error_query: http_request_total{{job=\"shop\", "
                        f"code=~\"5..\"}} matches no series: no metric named http_request_total in the last 1d")
    assert lines[1] == "2 SLOs, 4 series selectors: 1 error, 0 warnings"


def test_a_misspelled_label_is_an_error_listing_the_labels_there_are(prometheus, tmp_path):
    path = write_spec(tmp_path, spec("shop", error='http_requests_total{job="shop", cod=~"5.."}'))
    result = lint(prometheus, path)
    assert result.returncode == 1
    assert ("error_query: http_requests_total{job=\"shop\", cod=~\"5..\"} matches no series: no series of "
            "http_requests_total has the label cod (it has: code, job)") in result.stdout


def test_a_total_query_selecting_nothing_is_an_error(prometheus, tmp_path):
    path = write_spec(tmp_path, spec("shop", SHOP_ERRORS.replace("shop", "shopp"), SHOP_TOTAL.replace("shop", "shopp")))
    result = lint(prometheus, path)
    assert result.returncode == 1
    assert 'total_query: http_requests_total{job="shopp"} matches no series in the last 1d' in result.stdout
    assert 'warning: ' in result.stdout and "error_query: " in result.stdout  # no error counted yet: a warning


def test_an_error_query_without_errors_yet_is_only_a_warning(prometheus, tmp_path):
    path = write_spec(tmp_path, spec("quiet", SHOP_ERRORS.replace("shop", "quiet"), SHOP_TOTAL.replace("shop", "quiet")))
    result = lint(prometheus, path, extra=("--lookback", "2h"))
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines() == [
        f"warning: {path}: SLO quiet/availability: error_query: http_requests_total{{job=\"quiet\", code=~\"5..\"}} "
        "matches no series in the last 2h: no error counted yet, or a label value is misspelled",
        "1 SLO, 2 series selectors: 0 errors, 1 warning",
    ]


def test_an_unreachable_prometheus_and_bad_options_are_one_line(tmp_path):
    path = write_spec(tmp_path, spec("shop", "x", "y"))
    assert_one_line_error(lint(f"http://127.0.0.1:{free_port()}", path), r"cannot reach Prometheus at http://127\.0\.0\.1:\d+")
    assert_one_line_error(lint("http://127.0.0.1:1", path, extra=("--lookback", "soon")), r"--lookback: 'soon' is not a duration")
