"""build/ is reproducible, complete and committed up to date."""

import shutil

from medobs import REPO_ROOT, build
from tests.conftest import medobs


def test_committed_build_is_up_to_date():
    result = medobs("build", "--check")
    assert result.returncode == 0, f"build/ is stale; run `make build` and commit:\n{result.stdout}"


def test_build_twice_is_byte_identical(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    medobs("build", "--out", str(first), check=True)
    medobs("build", "--out", str(second), check=True)
    medobs("build", "--out", str(second), check=True)
    assert build.existing_files(first) == build.existing_files(second)
    for path in build.existing_files(first):
        assert (first / path).read_bytes() == (second / path).read_bytes(), path


def test_build_removes_left_over_files_and_check_reports_them(tmp_path):
    out = tmp_path / "build"
    shutil.copytree(REPO_ROOT / "build", out)
    (out / "prometheus" / "obsolete.yml").write_text("old: true\n")
    (out / "prometheus" / "prometheus-native.yml").write_text("edited by hand\n")
    check = medobs("build", "--check", "--out", str(out))
    assert check.returncode == 1
    assert "left over: prometheus/obsolete.yml" in check.stdout
    assert "changed:   prometheus/prometheus-native.yml" in check.stdout
    medobs("build", "--out", str(out), check=True)
    assert not (out / "prometheus" / "obsolete.yml").exists()
    assert medobs("build", "--check", "--out", str(out)).returncode == 0


def test_generated_files_carry_no_timestamps():
    for text in build.generate().values():
        assert "2026-" not in text and "generated at" not in text.lower()
