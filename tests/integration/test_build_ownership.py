"""``medobs build --out DIR`` (and ``medobs slo build``) own only what they wrote: the manifest in
DIR lists it, a rerun removes only its own stale files, other files are never touched, a generated
path holding someone else's file is refused, and a run cut short leaves whole files behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medobs import build, cli
from medobs.core import files as file_io, owned
from tests.conftest import DATA, medobs

MANIFEST = ".medobs-build.json"

#: A user's files in the output folder: top level, a dotfile, a subfolder, a git repository.
USER_FILES = {
    "notes.txt": "mine\n",
    ".env": "SECRET=1\n",
    "mine/keep.yml": "groups: []  # mine\n",
    ".git/HEAD": "ref: refs/heads/main\n",
    ".git/config": "[core]\n",
}
USER_FOLDERS = (".git/objects", "empty")  # empty folders of the user's


def plant_user_files(root: Path) -> None:
    for path, text in USER_FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for folder in USER_FOLDERS:
        (root / folder).mkdir(parents=True)


def assert_user_files_intact(root: Path) -> None:
    for path, text in USER_FILES.items():
        assert (root / path).read_text() == text, path
    for folder in USER_FOLDERS:
        assert (root / folder).is_dir(), folder


def all_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file()}


def manifest(root: Path) -> dict:
    return json.loads((root / MANIFEST).read_text())


def use_generators(monkeypatch: pytest.MonkeyPatch, *generated: dict[str, str]) -> None:
    """``medobs build`` generates exactly the given files (a definition change, in process)."""
    monkeypatch.setattr(build, "generators", lambda: [lambda files=files: dict(files) for files in generated])
    monkeypatch.setattr(build.k8s, "assembled_files", lambda files, dashboards_dir: {})  # made from the others


def run_build(*args: str) -> int:
    return cli.main(["build", *args])


FIRST = {"keep.yml": "a: 1\n", "old/deep/stale.yml": "s: 1\n", "shared/stale.yml": "s: 2\n", "edited.yml": "e: 1\n"}
SECOND = {"keep.yml": "a: 2\n", "new/added.yml": "n: 1\n"}


# --- the real generators, as a user runs them ------------------------------------------------------


def test_build_leaves_a_users_files_alone_and_removes_only_its_stale_files(tmp_path, monkeypatch):
    out = tmp_path / "out"
    plant_user_files(out)
    medobs("build", "--out", str(out), check=True)
    assert_user_files_intact(out)
    generated = manifest(out)["files"]
    assert "prometheus/rules/slo-ml-inference.yml" in generated and "k8s/slo-ml-inference.yaml" in generated
    assert set(all_files(out)) == set(generated) | set(USER_FILES) | {MANIFEST}
    check = medobs("build", "--check", "--out", str(out))
    assert check.returncode == 0 and "notes.txt" not in check.stdout and ".git" not in check.stdout, check.stdout

    # A definition changes: the ml-inference SLOs are gone (as if their spec were deleted).
    real = build.generators()
    monkeypatch.setattr(build, "generators", lambda: [
        lambda: {p: t for produce in real for p, t in produce().items() if "slo-ml-inference" not in p}
    ])
    assert run_build("--out", str(out)) == 0
    assert_user_files_intact(out)
    assert not (out / "prometheus" / "rules" / "slo-ml-inference.yml").exists()
    assert not (out / "k8s" / "slo-ml-inference.yaml").exists()
    assert (out / "prometheus" / "rules" / "slo-api-gateway.yml").exists()
    assert not any("slo-ml-inference" in path for path in manifest(out)["files"])
    assert run_build("--check", "--out", str(out)) == 0


def test_the_default_out_is_build_in_the_current_folder(tmp_path):
    command = [sys.executable, "-m", "medobs.cli", "build"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path / 'build'}: " in result.stdout
    assert (tmp_path / "build" / MANIFEST).is_file() and (tmp_path / "build" / "prometheus" / "rules").is_dir()
    check = subprocess.run([*command, "--check"], cwd=tmp_path, capture_output=True, check=False)
    assert check.returncode == 0


# --- definitions changed in process ----------------------------------------------------------------


def test_a_rerun_removes_its_stale_files_and_only_the_folders_that_removal_emptied(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    plant_user_files(out)
    (out / "shared").mkdir()
    (out / "shared" / "user.txt").write_text("u\n")
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 0
    (out / "edited.yml").write_text("e: edited by hand\n")
    capsys.readouterr()

    use_generators(monkeypatch, SECOND)
    assert run_build("--out", str(out)) == 0
    assert_user_files_intact(out)
    files = all_files(out)
    assert files["keep.yml"] == "a: 2\n" and files["new/added.yml"] == "n: 1\n"
    assert not (out / "old").exists()  # became empty through our removal
    assert files["shared/user.txt"] == "u\n" and "shared/stale.yml" not in files
    assert files["edited.yml"] == "e: edited by hand\n"  # edited since generated: no longer ours to remove
    assert sorted(manifest(out)["files"]) == ["keep.yml", "new/added.yml"]
    printed = capsys.readouterr().out
    assert "removed:   old/deep/stale.yml" in printed and "kept:      edited.yml" in printed
    assert f"{out.resolve()}: 2 generated files" in printed


def test_the_manifest_is_deterministic_with_each_files_sha256(tmp_path, monkeypatch):
    use_generators(monkeypatch, FIRST)
    for name in ("one", "two"):
        assert run_build("--out", str(tmp_path / name)) == 0
    text = (tmp_path / "one" / MANIFEST).read_text()
    assert text == (tmp_path / "two" / MANIFEST).read_text()
    content = json.loads(text)
    assert content["format"] == owned.FORMAT and content["generator"].startswith("medobs ")
    assert content["files"] == {path: owned.sha256(t.encode()) for path, t in sorted(FIRST.items())}
    assert list(content["files"]) == sorted(FIRST)


def test_a_generated_path_holding_a_users_file_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.yml").write_text("mine\n")
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and str(out / "keep.yml") in error[0] and "--force" in error[0], error
    assert all_files(out) == {"keep.yml": "mine\n"}  # nothing written

    assert run_build("--out", str(out), "--force") == 0
    assert (out / "keep.yml").read_text() == "a: 1\n" and "keep.yml" in manifest(out)["files"]


def test_a_file_already_holding_the_generated_text_is_taken_without_force(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.yml").write_text(FIRST["keep.yml"])
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 0
    assert "keep.yml" in manifest(out)["files"]


@pytest.mark.parametrize("blocker", ["keep.yml/", "old"], ids=["folder-at-a-file", "file-at-a-folder"])
def test_a_users_folder_or_file_in_the_way_is_refused_even_when_forced(tmp_path, monkeypatch, capsys, blocker):
    out = tmp_path / "out"
    out.mkdir()
    if blocker.endswith("/"):
        (out / blocker).mkdir()
    else:
        (out / blocker).write_text("mine\n")
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out), "--force") == 2
    assert str(out / blocker.rstrip("/")) in capsys.readouterr().err
    assert not (out / MANIFEST).exists()


def test_check_reports_generated_files_only(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    plant_user_files(out)
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 0
    assert run_build("--check", "--out", str(out)) == 0
    (out / "keep.yml").write_text("a: edited\n")
    (out / "shared" / "stale.yml").unlink()
    capsys.readouterr()
    # The definitions change: old/deep/stale.yml is no longer generated, new/added.yml is.
    changed = {path: text for path, text in FIRST.items() if not path.startswith("old/")}
    use_generators(monkeypatch, {**changed, "new/added.yml": "n: 1\n"})
    assert run_build("--check", "--out", str(out)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == [
        "changed:   .medobs-build.json",
        "changed:   keep.yml",
        "missing:   new/added.yml",
        "left over: old/deep/stale.yml",
        "missing:   shared/stale.yml",
    ]
    assert "is stale" in lines[-1]


# --- a run cut short -------------------------------------------------------------------------------


def test_a_crash_mid_write_leaves_whole_files_and_a_rerun_converges(tmp_path, monkeypatch):
    out = tmp_path / "out"
    plant_user_files(out)
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 0
    old_manifest = (out / MANIFEST).read_text()

    # Every file changes; the process dies after two files have been replaced.
    second = {path: text + "# second\n" for path, text in FIRST.items()}
    real_replace, replaced = file_io.os.replace, []

    def dying_replace(source, target):
        if Path(target) == build.folder(out).pending_path:  # the run's record, written first
            return real_replace(source, target)
        if len(replaced) == 2:
            raise KeyboardInterrupt  # what a signal looks like to the writer
        replaced.append(target)
        real_replace(source, target)

    monkeypatch.setattr(file_io.os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        build.write(out, second)
    monkeypatch.setattr(file_io.os, "replace", real_replace)

    files = all_files(out)
    assert not [p for p in files if p.endswith(".medobs-tmp")]
    assert (out / MANIFEST).read_text() == old_manifest  # written last: still the previous run's
    assert sorted(p for p in FIRST if files[p] == second[p]) == sorted(str(Path(t).relative_to(out)) for t in replaced)
    assert all(files[p] in (FIRST[p], second[p]) for p in FIRST)
    assert_user_files_intact(out)
    # --check names the interrupted run instead of comparing, in one line, exit status 1.
    with pytest.raises(owned.Interrupted, match=r"a `medobs build` run \(pid \d+, started .*\) was interrupted"):
        build.folder(out).differences(second)
    assert run_build("--check", "--out", str(out)) == 1

    # A kill in the middle of writing a temporary file leaves it behind; the rerun replaces it.
    (out / ".keep.yml.medobs-tmp").write_text("a: tru")
    build.write(out, second)
    assert build.folder(out).differences(second) == []
    assert not build.folder(out).pending_path.exists()
    assert {p: t for p, t in all_files(out).items() if p in second} == second
    assert not [p for p in all_files(out) if p.endswith(".medobs-tmp")]
    assert_user_files_intact(out)


def write_all_but_the_manifest(out: Path, files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A run of ``files`` into ``out`` killed just before it writes its manifest."""
    real_replace = file_io.os.replace

    def dying_replace(source, target):
        if Path(target) == build.folder(out).manifest_path:
            raise KeyboardInterrupt
        real_replace(source, target)

    with monkeypatch.context() as patch:
        patch.setattr(file_io.os, "replace", dying_replace)
        with pytest.raises(KeyboardInterrupt):
            build.write(out, files)


@pytest.mark.parametrize("then", [{"keep.yml": "a: 3\n", "new/added.yml": "n: 3\n"}, {"keep.yml": "a: 3\n"}])
def test_the_files_of_an_interrupted_run_are_the_next_runs_own(tmp_path, monkeypatch, then):
    out = tmp_path / "out"
    plant_user_files(out)
    build.write(out, FIRST)
    write_all_but_the_manifest(out, SECOND, monkeypatch)
    assert (out / "new" / "added.yml").read_text() == "n: 1\n"  # written, but in no manifest
    # Generated again with other text, or no longer generated: neither refused nor left behind.
    changes = build.write(out, then)
    assert ("updated:   new/added.yml" in changes) == ("new/added.yml" in then)
    assert ("removed:   new/added.yml" in changes) == ("new/added.yml" not in then)
    assert {p: t for p, t in all_files(out).items() if p not in USER_FILES} == {**then, MANIFEST: manifest_text(out, then)}
    assert_user_files_intact(out)


def manifest_text(out: Path, files: dict[str, str]) -> str:
    return build.folder(out).manifest_text(files)


def test_a_failing_generator_writes_nothing(tmp_path, monkeypatch):
    out = tmp_path / "out"
    plant_user_files(out)
    use_generators(monkeypatch, FIRST)
    assert run_build("--out", str(out)) == 0
    before = all_files(out)

    def broken() -> dict[str, str]:
        raise RuntimeError("a definition is broken")

    monkeypatch.setattr(build, "generators", lambda: [lambda: dict(SECOND), broken])
    with pytest.raises(RuntimeError):
        run_build("--out", str(out))
    assert all_files(out) == before


# --- medobs slo build ------------------------------------------------------------------------------


def test_slo_build_removes_the_files_of_a_removed_slo_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    plant_user_files(out)
    both = [str(DATA / "sloth" / "getting-started.yml"), str(DATA / "sloth" / "no-alerts.yml")]
    medobs("slo", "build", *both, "--out", str(out), "--kubernetes", check=True)
    first = json.loads((out / ".medobs-slo-build.json").read_text())["files"]
    assert any(p.startswith("k8s/") for p in first)
    medobs("slo", "build", both[0], "--out", str(out), check=True)
    second = json.loads((out / ".medobs-slo-build.json").read_text())["files"]
    assert set(second) < set(first) and not any(p.startswith("k8s/") for p in second)
    assert_user_files_intact(out)
    assert set(all_files(out)) == set(second) | set(USER_FILES) | {".medobs-slo-build.json"}
