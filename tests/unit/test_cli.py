"""The medobs command's groups, and every command registered by the module the CLI imports for it."""

import pytest

from medobs.cli import COMMANDS, chosen_command, missing_extra, parser


def all_command_paths() -> list[list[str]]:
    paths = []

    def walk(p, prefix):
        paths.append(prefix)
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    walk(sub, prefix + [name])

    walk(parser(), [])
    return paths


def test_groups_exist():
    """Every command group of the package, registered by the module that owns it."""
    names = {p[0] for p in all_command_paths() if p}
    assert names == {"build", "mixin", "dashboards", "stack", "exporter", "rules", "backup-metrics", "slo", "simulate"}


def test_every_command_is_registered_by_the_module_the_cli_imports_for_it():
    registered = {" ".join(p) for p in all_command_paths() if p}
    assert set(COMMANDS) <= registered
    for command in COMMANDS:
        level = parser(command)
        for word in command.split():
            (choices,) = [a.choices for a in level._actions if a.__class__.__name__ == "_SubParsersAction"]
            assert word in choices, f"{COMMANDS[command][0]} does not register `{command}`"
            level = choices[word]


def test_a_command_alone_imports_only_its_own_modules():
    """`medobs exporter gpu` registers the GPU exporter and nothing beside it."""
    (top,) = [a.choices for a in parser("exporter gpu")._actions if a.__class__.__name__ == "_SubParsersAction"]
    (exporters,) = [a.choices for a in top["exporter"]._actions if a.__class__.__name__ == "_SubParsersAction"]
    assert list(top) == ["exporter"] and list(exporters) == ["gpu"]


@pytest.mark.parametrize(("argv", "command"), [
    (["exporter", "gpu", "--listen", "127.0.0.1:9400"], "exporter gpu"),
    (["-v", "exporter", "queue"], "exporter queue"),
    (["exporter", "--help"], "exporter"),
    (["stack", "up"], "stack"),
    (["slo", "report", "exporter"], "slo"),
    (["--version"], None),
    (["nosuch", "gpu"], None),
])
def test_the_chosen_command_is_the_deepest_known_one_on_the_line(argv, command):
    assert chosen_command(argv) == command


@pytest.mark.parametrize(("command", "module", "needs"), [
    ("exporter gpu", "pynvml", "needs the gpu extra: pip install 'medobs[gpu]'"),
    ("exporter queue", "certifi", "needs the queue extra: pip install 'medobs[queue]'"),
    ("simulate", "psycopg.conninfo", "needs the stack extra: pip install 'medobs[stack]'"),
    ("dashboards", "grafanalib", "needs the build extra: pip install 'medobs[build]'"),
    ("exporter gpu", "no_such_module", None),  # not an extra's module: a bug, left as a traceback
    ("backup-metrics", "yaml", None),  # a core command needs no extra
])
def test_a_missing_module_of_an_extra_names_the_extra_of_the_command(command, module, needs):
    assert missing_extra(command, ModuleNotFoundError(f"No module named {module!r}", name=module)) == needs
