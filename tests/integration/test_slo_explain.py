"""`medobs slo explain` and `medobs slo build` on the command line: text and JSON, the warning
where a tier can never fire, and one-line errors."""

import json


from tests.conftest import medobs
from tests.slo_support import AVAILABILITY_SPEC, write_spec


def test_cli_text_and_json(tmp_path):
    path = write_spec(tmp_path, AVAILABILITY_SPEC.replace("99.9", "90"))
    text = medobs("slo", "explain", str(path), check=True).stdout
    assert "shop/availability: 90% over 30d, error budget 10% (3d of total outage)" in text
    assert "page (critical)   1h / 5m   14.4x  never" in text
    assert "warning: page 1h/5m can never fire" in text
    data = json.loads(medobs("slo", "explain", str(path), "--format", "json", "--evaluation-interval", "1m", check=True).stdout)
    assert data[0]["evaluation_interval_seconds"] == 60 and data[0]["tiers"][1]["burn_rate"] == 6.0


def test_build_warns_about_a_tier_that_can_never_fire(tmp_path):
    path = write_spec(tmp_path, AVAILABILITY_SPEC.replace("99.9", "90"))
    result = medobs("slo", "build", str(path), "--out", str(tmp_path / "out"), check=True)
    assert "warning: shop/availability: page 1h/5m can never fire" in result.stderr


def test_unknown_slo_is_one_line(tmp_path):
    result = medobs("slo", "explain", str(write_spec(tmp_path, AVAILABILITY_SPEC)), "--slo", "nope")
    assert result.returncode == 2 and result.stderr.strip() == "medobs slo: error: --slo nope: no such SLO in the specs given"
