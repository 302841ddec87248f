"""What the package declares: the license, one version, a lean core and an extra per use that
holds what each command imports; and the defaults that need no checkout (the wheel itself:
tests/integration/test_wheel.py)."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from medobs import UserError, __version__, build, package_data, stack
from medobs.cli import COMMANDS, EXTRA_MODULES, main, parser
from tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
OURS = {"medobs", "exporters", "alerts", "dashboards", "slo"}


def name(requirement: str) -> str:
    """The normalised distribution name of a requirement (``PyYAML>=6`` -> ``pyyaml``)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9._-]+", requirement).group(0)).lower()


def requirements(dist: str, extras: set[str]) -> list[str]:
    """What installing ``dist[extras]`` requires (nothing for one not installed here: an environment
    marker left it out, so nothing of it can be imported either)."""
    try:
        listed = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    wanted = re.compile(rf"extra == ['\"]({'|'.join(map(re.escape, extras)) or '(?!)'})['\"]")
    return [r for r in listed if "extra ==" not in r or wanted.search(r)]


def needed_by(extra: str | None) -> set[str]:
    """Every distribution that installing medobs with ``extra`` brings, dependencies of dependencies too."""
    found: set[str] = set()
    todo = requirements("medobs", {extra} if extra else set())
    while todo:
        requirement = todo.pop()
        if (dist := name(requirement)) in found or dist == "medobs":
            continue
        found.add(dist)
        extras = re.match(r"[A-Za-z0-9._-]+(?:\[([^\]]*)\])?", requirement).group(1) or ""
        todo += requirements(dist, {e.strip() for e in extras.split(",") if e.strip()})
    return found


def test_the_license_is_the_apache_2_text_and_ships_with_the_package():
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text and "END OF TERMS AND CONDITIONS" in text
    assert len(text.split()) > 1500  # the whole text, not a pointer to it
    assert PYPROJECT["project"]["license"] == "Apache-2.0" and PYPROJECT["project"]["license-files"] == ["LICENSE"]


def test_medobs_version_prints_the_one_version(capsys):
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "medobs/__init__.py"
    assert importlib.metadata.version("medobs") == __version__
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out == f"medobs {__version__}\n"


def test_the_core_is_what_every_exporter_needs_and_each_use_is_an_extra():
    assert [name(r) for r in PYPROJECT["project"]["dependencies"]] == ["prometheus-client"]
    assert set(EXTRAS) == {"gpu", "queue", "inference", "build", "stack", "all", "test"}
    assert {extra for _, extra in COMMANDS.values() if extra} <= set(EXTRAS)
    assert EXTRAS["all"] == ["medobs[gpu,queue,inference,build,stack]"]
    assert "medobs[all]" in EXTRAS["test"] and any(name(r) == "pytest-xdist" for r in EXTRAS["test"])


def test_every_module_named_as_an_extras_is_installed_by_an_extra():
    """The CLI's table of the extras' modules and pyproject.toml name the same things."""
    provided = importlib.metadata.packages_distributions()
    in_extras = {name(r) for extra in EXTRAS.values() for r in extra}
    for module in EXTRA_MODULES:
        assert {name(d) for d in provided[module]} & in_extras, f"{module} is installed by no extra"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_command_imports_only_what_the_core_and_its_extra_install(command):
    """Import analysis, per command: the third-party modules its module loads come from its extra."""
    module, extra = COMMANDS[command]
    script = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                       timeout=60).stdout)
    third_party = {m for m in loaded if m not in sys.stdlib_module_names and m not in OURS and not m.startswith("_")}
    provided = importlib.metadata.packages_distributions()
    found = {name(d) for m in third_party for d in provided.get(m, [])}
    assert found <= needed_by(extra), f"medobs {command} imports {sorted(found - needed_by(extra))} beyond its extra"


def test_missing_package_data_is_one_line_naming_the_fix():
    with pytest.raises(UserError, match=r"^alerts/no-such-folder is missing from the installed package: reinstall medobs$"):
        package_data("alerts", "no-such-folder")


def test_stack_up_renders_the_build_into_its_state_folder_unless_given_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stack, "COMPONENTS", ())  # start nothing: the build is rendered before anything starts
    args = parser("stack").parse_args(["stack", "--state-dir", str(tmp_path), "--port-offset", "0", "up", "--wait", "0"])
    assert stack.cmd_up(args) == 0
    assert build.folder(tmp_path / "build").differences(build.generate()) == []
    assert stack._stack(args).prometheus_config() == tmp_path / "build" / "prometheus" / "prometheus-native.yml"
    given = parser("stack").parse_args(["stack", "--state-dir", str(tmp_path), "--build-dir", "elsewhere", "status"])
    assert stack._stack(given).build_dir == Path("elsewhere").resolve()
