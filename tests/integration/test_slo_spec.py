"""SLO specs on the command line: every bad spec is one clear line naming the file and the field,
and generated files never replace a hand-written file."""

import pytest

from tests.conftest import medobs
from tests.slo_support import assert_one_line_error, write_spec


BASE = """version: prometheus/v1
service: shop
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
"""

LATENCY = """version: prometheus/v1
service: gateway
slos:
  - name: latency
    objective: 99
    sli:
      latency:
        metric: http_server_requests_seconds
        threshold: 0.3
"""

BAD_SPECS = {
    "yaml": (BASE.replace("slos:", "slos: [oops"), r"spec\.yaml:\d+:\d+: invalid YAML: "),
    "unknown field": (BASE.replace("objective:", "objectve: 1\n    objective:"),
                      r"spec\.yaml: slos\[0\]\.objectve: unknown field; expected one of: name, objective"),
    "unknown template field": (LATENCY.replace("threshold:", "treshold: 1\n        threshold:"),
                               r"spec\.yaml: slos\[0\]\.sli\.latency\.treshold: unknown field; expected one of: metric"),
    "objective 100": (BASE.replace("99.9", "100"), r"spec\.yaml: slos\[0\]\.objective: 100 is outside \(0, 100\)"),
    "objective 0": (BASE.replace("99.9", "0"), r"spec\.yaml: slos\[0\]\.objective: 0 is outside \(0, 100\)"),
    "objective negative": (BASE.replace("99.9", "-5"), r"spec\.yaml: slos\[0\]\.objective: -5 is outside \(0, 100\)"),
    "objective text": (BASE.replace("99.9", "high"), r"spec\.yaml: slos\[0\]\.objective: expected a percentage"),
    "no window": (BASE.replace("[{{.window}}]))\n        total", "[5m]))\n        total"),
                  r"spec\.yaml: slos\[0\]\.sli\.events\.error_query: does not use \{\{\.window\}\}"),
    "no window raw": (BASE.split("    sli:")[0] + "    sli:\n      raw:\n        error_ratio_query: my_ratio\n",
                      r"spec\.yaml: slos\[0\]\.sli\.raw\.error_ratio_query: does not use \{\{\.window\}\}"),
    "threshold": (LATENCY, r"spec\.yaml: slos\[0\]\.sli\.latency\.threshold: 0\.3 is not a bucket bound of "
                           r"http_server_requests_seconds \(0\.1, 0\.25, 0\.5, 1, 2, 5\)"),
    "period": (BASE.replace("    objective:", "    period: 14d\n    objective:"),
               r"spec\.yaml: slos\[0\]\.period: '14d' is not one of 7d, 28d, 30d"),
    "version": (BASE.replace("prometheus/v1", "sloth/v2"), r"spec\.yaml: version: 'sloth/v2' is not supported"),
    "two SLIs": (BASE.replace("    sli:\n", "    sli:\n      raw: {error_ratio_query: 'x[{{.window}}]'}\n"),
                 r"spec\.yaml: slos\[0\]\.sli: expected exactly one of: events, raw, availability"),
    "plugin": (BASE.split("    sli:")[0] + "    sli:\n      plugin: {id: x}\n",
               r"spec\.yaml: slos\[0\]\.sli\.plugin: Sloth SLI plugins are Go code"),
    "reserved label": (BASE.replace("slos:", "labels: {slo: x}\nslos:"),
                       r"spec\.yaml: labels\.slo: is set by the compiler"),
    "catalog label": (LATENCY.replace("threshold: 0.3", "threshold: 0.5\n        filter: 'route=\"x\"'"),
                      r"spec\.yaml: slos\[0\]\.sli\.latency\.filter: http_server_requests_seconds has no label 'route'"),
    "catalog type": (LATENCY.replace("http_server_requests_seconds", "hikaricp_connections_active"),
                     r"spec\.yaml: slos\[0\]\.sli\.latency\.metric: hikaricp_connections_active is a gauge"),
    "duplicate": (BASE + BASE.split("slos:\n")[1], r"spec\.yaml: slos\[1\]\.name: 'availability' is used twice"),
    "min_events raw": (BASE.split("    sli:")[0] + "    sli:\n      raw:\n        error_ratio_query: x[{{.window}}]\n"
                       "    alerting:\n      min_events: 10\n",
                       r"spec\.yaml: slos\[0\]\.alerting\.min_events: needs an SLI that counts events"),
    "bad duration": (BASE + "    alerting:\n      page_alert:\n        for: soon\n",
                     r"spec\.yaml: slos\[0\]\.alerting\.page_alert\.for: 'soon' is not a duration"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS), ids=list(BAD_SPECS))
def test_bad_spec_is_one_clear_line_naming_file_and_field(tmp_path, case):
    text, pattern = BAD_SPECS[case]
    path = write_spec(tmp_path, text)
    result = medobs("slo", "build", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, r"\S*" + pattern)
    assert not (tmp_path / "out").exists()


def test_missing_spec_file_is_one_line(tmp_path):
    result = medobs("slo", "build", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"medobs slo: error: {tmp_path / 'nope.yaml'}: no such file or folder"


def test_generated_files_never_replace_a_hand_written_file(tmp_path):
    path = write_spec(tmp_path, BASE)
    mine = tmp_path / "out" / "rules" / "slo-shop.yml"
    mine.parent.mkdir(parents=True)
    mine.write_text("groups: []  # mine\n")
    result = medobs("slo", "build", str(path), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "was not generated by medobs" in result.stderr
    assert mine.read_text() == "groups: []  # mine\n"
    mine.unlink()
    medobs("slo", "build", str(path), "--out", str(tmp_path / "out"), check=True)
    medobs("slo", "build", str(path), "--out", str(tmp_path / "out"), check=True)  # its own files: rewritten
