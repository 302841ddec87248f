"""promtool accepts the generated scrape configs of every flavour."""

import subprocess

import pytest
import yaml

from tests.conftest import REPO, require_binary

BUILT = REPO / "build" / "prometheus"


def promtool_check_config(path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_binary("promtool"), "check", "config", *flags, str(path)],
        capture_output=True, text=True,
    )


@pytest.mark.parametrize("flavour", ["compose", "native"])
def test_promtool_accepts_static_flavours_with_their_rule_files(flavour):
    """The full check, rule files included (``rules/*.yml`` resolves from the config's folder,
    as Prometheus resolves it): every built rule file is checked and valid."""
    result = promtool_check_config(BUILT / f"prometheus-{flavour}.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted((BUILT / "rules").glob("*.yml"))
    assert f"SUCCESS: {len(rule_files)} rule files found" in result.stdout
    for path in rule_files:
        assert f"Checking {path}\n  SUCCESS: " in result.stdout, f"{path.name} not checked"


def test_promtool_accepts_kubernetes_flavour_apart_from_discovery(tmp_path):
    """Debian's Prometheus is built without Kubernetes discovery (see docs/build.md), so promtool checks
    everything else (relabelling, paths, intervals) with the discovery block swapped for file_sd;
    the discovery blocks are checked against the upstream field set below."""
    config = yaml.safe_load((BUILT / "prometheus-kubernetes.yml").read_text())
    for job in config["scrape_configs"]:
        job.pop("kubernetes_sd_configs")
        job["file_sd_configs"] = [{"files": ["targets/*.json"]}]
    target = tmp_path / "prometheus.yml"
    target.write_text(yaml.safe_dump(config))
    result = promtool_check_config(target, "--syntax-only")
    assert result.returncode == 0, result.stdout + result.stderr
