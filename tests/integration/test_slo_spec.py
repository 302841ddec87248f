"""SLO specs on the command line: every bad spec is one clear line naming the file and the field,
and generated files never replace a hand-written file."""

import pytest
import yaml

from tests.conftest import medobs
from tests.slo_support import assert_one_line_error, write_spec
from tests.unit.test_slo_spec import BASE

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

KUBERNETES = """apiVersion: sloth.slok.dev/v1
kind: PrometheusServiceLevel
metadata: {name: shop, namespace: monitoring}
spec:
  service: shop
  slos:
    - name: availability
      objective: 99.9
      sli:
        events:
          errorQuery: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
          totalQuery: sum(rate(http_requests_total[{{.window}}]))
      alerting:
        pageAlert: {disable: true}
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
               r"spec\.yaml: slos\[0\]\.sli\.plugin: Sloth SLI plugins \('x'\) are not supported \(medobs cannot run "
               r"Sloth's Go plugins\): write the queries the plugin generates as sli\.events \(error_query and "
               r"total_query, with \{\{\.window\}\}\) or sli\.raw \(error_ratio_query\)$"),
    "plugin, Kubernetes form": (KUBERNETES.split("      sli:")[0] + "      sli:\n        plugin: {id: x}\n",
                                r"spec\.yaml: spec\.slos\[0\]\.sli\.plugin: Sloth SLI plugins \('x'\) are not supported "
                                r".* as sli\.events \(errorQuery and totalQuery, .*\) or sli\.raw \(errorRatioQuery\)$"),
    "SLO plugins": (BASE.replace("slos:", "slo_plugins: {chain: [{id: sloth.dev/core/debug/v1}]}\nslos:"),
                    r"spec\.yaml: slo_plugins: Sloth SLO plugins are not supported"),
    "SLO plugins, Kubernetes form": (KUBERNETES.replace("  slos:", "  sloPlugins: {chain: [{id: x}]}\n  slos:"),
                                     r"spec\.yaml: spec\.sloPlugins: Sloth SLO plugins are not supported"),
    "snake case in the Kubernetes form": (KUBERNETES.replace("pageAlert", "page_alert"),
                                          r"spec\.yaml: spec\.slos\[0\]\.alerting\.page_alert: unknown field; expected "
                                          r"one of: name, labels, annotations, pageAlert, ticketAlert, absentAlert, minEvents"),
    "camel case in prometheus/v1": (BASE.replace("error_query", "errorQuery"),
                                    r"spec\.yaml: slos\[0\]\.sli\.events\.errorQuery: unknown field; expected one of: "
                                    r"error_query, total_query"),
    "missing errorQuery": (KUBERNETES.replace("errorQuery", "# errorQuery"),
                           r"spec\.yaml: spec\.slos\[0\]\.sli\.events\.errorQuery: is required"),
    "Kubernetes kind": (KUBERNETES.replace("PrometheusServiceLevel", "AlertWindows"),
                        r"spec\.yaml: kind: 'AlertWindows' is not a service level; expected PrometheusServiceLevel"),
    "Kubernetes apiVersion": (KUBERNETES.replace("sloth.slok.dev/v1", "sloth.slok.dev/v2"),
                              r"spec\.yaml: apiVersion: 'sloth\.slok\.dev/v2' is not supported; expected 'sloth\.slok\.dev/v1'"),
    "Kubernetes objective": (KUBERNETES.replace("99.9", "100"),
                             r"spec\.yaml: spec\.slos\[0\]\.objective: 100 is outside \(0, 100\)"),
    "scrape interval": (BASE.replace("slos:", "scrape_interval: often\nslos:"),
                        r"spec\.yaml: scrape_interval: 'often' is not a duration"),
    "scrape interval of an SLO": (BASE.replace("    objective:", "    scrape_interval: 0s\n    objective:"),
                                  r"spec\.yaml: slos\[0\]\.scrape_interval: '0s' is not a scrape interval above 0"),
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


NOT_UTF8 = b"version: prometheus/v1\nservice: caf\xe9\n"


@pytest.mark.parametrize("command", [
    ("slo", "build", "{spec}", "--out", "{out}"),
    ("slo", "explain", "{spec}"),
    ("slo", "report", "--prometheus", "http://127.0.0.1:9", "--spec", "{spec}"),
    ("slo", "lint", "--prometheus", "http://127.0.0.1:9", "{spec}"),
    ("slo", "import-openslo", "{spec}"),
], ids=lambda command: command[1])
def test_a_spec_that_is_not_utf8_is_one_line_in_every_command(tmp_path, command):
    path = tmp_path / "spec.yaml"
    path.write_bytes(NOT_UTF8)
    result = medobs(*(part.format(spec=path, out=tmp_path / "out") for part in command))
    assert_one_line_error(result, rf"the spec {path} is not UTF-8 text \(byte 35\)$")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_same_slo_per_environment_compiles_into_two_sets_of_rules_and_tests(tmp_path):
    prod = BASE.replace("slos:", "labels: {env: prod}\nslos:").replace('{code=~"5.."}', '{env="prod", code=~"5.."}')
    write_spec(tmp_path / "specs", prod, "prod.yaml")
    write_spec(tmp_path / "specs", prod.replace("prod", "staging"), "staging.yaml")
    result = medobs("slo", "build", str(tmp_path / "specs"), "--out", str(tmp_path / "out"), "--verify", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 test files pass" in result.stdout
    groups = yaml.safe_load((tmp_path / "out" / "rules" / "slo-shop.yml").read_text())["groups"]
    environments = {rule["labels"]["env"] for group in groups for rule in group["rules"] if "record" in rule}
    assert environments == {"prod", "staging"}
    assert len({group["name"] for group in groups}) == len(groups)
