"""`medobs slo explain`: detection time, budget spent and reset time per tier, and a warning where
a tier can never fire."""

import pytest

from slo import explain, spec
from tests.slo_support import AVAILABILITY_SPEC, write_spec


def analysed(tmp_path, text=AVAILABILITY_SPEC, evaluation=15):
    (loaded,) = spec.load(write_spec(tmp_path, text))
    return explain.analyse(loaded.slos[0], evaluation)


def test_workbook_numbers_for_99_9_over_30_days(tmp_path):
    report = analysed(tmp_path)
    page, slow_page, ticket, slow_ticket = report.tiers
    # 14.4 x 0.1% of 1 hour = 51.84 s of total outage, then one 15 s evaluation.
    assert page.detection_seconds == pytest.approx(51.84 + 15)
    assert slow_page.detection_seconds == pytest.approx(0.006 * 6 * 3600 + 15)
    assert ticket.detection_seconds == slow_ticket.detection_seconds == pytest.approx(0.003 * 86400 + 15)
    assert [t.budget_spent_threshold for t in report.tiers] == pytest.approx([0.02, 0.05, 0.10, 0.10])
    assert page.budget_spent_outage == pytest.approx(66.84 / (0.001 * 30 * 86400))
    # Once errors stop, the 5m window's ratio falls under 1.44% after 5m x (1 - 0.0144).
    assert page.reset_seconds == pytest.approx(300 * (1 - 0.0144) + 15)
    assert report.budget_seconds == pytest.approx(2592)
    assert report.warnings == []


def test_a_tier_that_can_never_fire_is_warned(tmp_path):
    report = analysed(tmp_path, AVAILABILITY_SPEC.replace("99.9", "90"))
    fast = report.tiers[0]
    assert not fast.can_fire and fast.detection_seconds is None and fast.reset_seconds is None
    assert all(t.can_fire for t in report.tiers[1:])  # 6 x 10% = 60% can still be exceeded
    assert report.warnings == [
        "page 1h/5m can never fire: it needs an error ratio above 14.4 x 0.1 = 144%; raise the objective or disable page_alert"
    ]


def test_for_is_added_and_a_for_longer_than_the_short_window_is_warned(tmp_path):
    text = AVAILABILITY_SPEC + "      page_alert:\n        for: 10m\n"
    report = analysed(tmp_path, text)
    assert report.tiers[0].detection_seconds == pytest.approx(51.84 + 15 + 600)
    assert any("for 10m is not shorter than the short window" in w for w in report.warnings)
