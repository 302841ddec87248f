"""`medobs slo lint` without a Prometheus: which selectors it asks about, written as match[]
arguments, and which matchers need their label."""

from promql_parser import MatchOp

from medobs.core import promql
from slo import lint, spec
from tests.slo_support import write_spec
from tests.unit.test_slo_spec import BASE, SLOTH


def test_selectors_are_asked_without_offset_and_with_quotes_escaped():
    (selector,) = promql.selectors(promql.parse('sum(rate(x_total{a="q\\"t", b=~"5.."}[5m] offset 1h))'))
    assert lint.selector_text(selector) == 'x_total{a="q\\"t", b=~"5.."}'
    (nameless,) = promql.selectors(promql.parse('{__name__="up", job!=""}'))
    assert lint.selector_text(nameless) == '{__name__="up", job!=""}'


def test_only_matchers_that_cannot_match_an_absent_label_need_it():
    assert lint._needs_label(MatchOp.Equal, "500")
    assert not lint._needs_label(MatchOp.Equal, "")
    assert lint._needs_label(MatchOp.Re, "5..")
    assert not lint._needs_label(MatchOp.Re, "5..|")
    assert not lint._needs_label(MatchOp.NotEqual, "x") and not lint._needs_label(MatchOp.NotRe, "x")


def test_queries_are_named_as_the_spec_names_them():
    (raw,) = spec.load(SLOTH / "raw-home-wifi.yml")[0].slos
    assert [field for field, _ in lint.queries(raw)] == ["error_ratio_query"]
    (events,) = spec.load(SLOTH / "getting-started.yml")[0].slos
    assert [field for field, _ in lint.queries(events)] == ["error_query", "total_query"]


def test_a_query_that_is_not_promql_is_an_error_and_prometheus_is_not_asked(tmp_path):
    text = BASE.replace('sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))', "sum(rate(x[{{.window}}])").replace(
        "sum(rate(http_requests_total[{{.window}}]))", "rate(y[{{.window}}]) +")
    (slo,) = spec.load(write_spec(tmp_path, text))[0].slos
    result = lint.lint([slo], linter=None)  # a linter would be asked about selectors: there are none
    assert [f.line().split(" is not valid PromQL")[0] for f in result.findings] == [
        f"error: {slo.source}: SLO shop/availability: error_query: sum(rate(x[{{{{.window}}}}])",
        f"error: {slo.source}: SLO shop/availability: total_query: rate(y[{{{{.window}}}}]) +",
    ]
    assert (result.errors, result.selectors) == (2, 0)
