"""build/ is reproducible, complete and committed up to date."""

import shutil

import pytest

from medobs import build
from medobs.core import output
from tests.conftest import REPO, medobs


def files_under(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_committed_build_is_up_to_date():
    result = medobs("build", "--check")
    assert result.returncode == 0, f"build/ is stale; run `make build` and commit:\n{result.stdout}"


@pytest.mark.slow
def test_build_twice_is_byte_identical(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    medobs("build", "--out", str(first), check=True)
    medobs("build", "--out", str(second), check=True)
    medobs("build", "--out", str(second), check=True)
    assert files_under(first) == files_under(second)


def test_build_rewrites_a_changed_file_and_check_reports_it(tmp_path):
    out = tmp_path / "build"
    shutil.copytree(REPO / "build", out)
    (out / "prometheus" / "prometheus-native.yml").write_text("edited by hand\n")
    (out / "prometheus" / "mine.yml").write_text("mine: true\n")  # not generated: not ours to report
    check = medobs("build", "--check", "--out", str(out))
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == "changed:   prometheus/prometheus-native.yml"
    assert "mine.yml" not in check.stdout
    medobs("build", "--out", str(out), check=True)
    assert (out / "prometheus" / "mine.yml").read_text() == "mine: true\n"
    assert files_under(out) == {**files_under(REPO / "build"), "prometheus/mine.yml": b"mine: true\n"}
    assert medobs("build", "--check", "--out", str(out)).returncode == 0


def test_generated_files_carry_no_timestamps():
    for text in build.generate().values():
        assert "2026-" not in text and "generated at" not in text.lower()


def test_generated_bytes_do_not_depend_on_the_yaml_emitter(monkeypatch):
    """libyaml's emitter (where PyYAML has it) writes what the pure-Python one writes."""
    fast = build.generate()
    monkeypatch.setattr(output, "_Dumper", output.PYTHON_DUMPER)
    assert build.generate() == fast


def test_a_site_file_reaches_the_rules_and_a_bad_one_writes_nothing(tmp_path):
    """The runbook base and the Grafana URL of the site are in every alert of the rule files; a
    site file with a mistake is one line on stderr, exit 1, and no output folder."""
    config = tmp_path / "site.yaml"
    config.write_text("runbook_base_url: https://wiki.example.org/rb\ngrafana: {url: https://g.example.org}\n")
    medobs("build", "--config", str(config), "--out", str(tmp_path / "out"), check=True)
    rules = "".join(p.read_text() for p in (tmp_path / "out" / "prometheus" / "rules").glob("alerts-*.yml"))
    assert "runbook_url: https://wiki.example.org/rb/" in rules and "dashboard_url: https://g.example.org/d/" in rules
    assert "gitlab.med-diagnosis.com" not in rules and "grafana.med-diagnosis.com" not in rules
    config.write_text("grafana: {url: [not, a, string]}\n")
    failed = medobs("build", "--config", str(config), "--out", str(tmp_path / "again"))
    assert failed.returncode == 1 and failed.stdout == ""
    assert failed.stderr == f"medobs build: error: {config}: grafana.url: expected a string, got list ['not', 'a', 'string']\n"
    assert not (tmp_path / "again").exists()
