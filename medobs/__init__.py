"""medobs: observability and SLOs for the medical-imaging ML platform."""

import os
from importlib import resources
from pathlib import Path

#: The package's version: the single source (pyproject.toml's hatch reads it from here).
__version__ = "0.1.0"


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status ``exit_code`` (2 unless a
    command documents another), no traceback."""

    exit_code = 2


def first_line(error: Exception) -> str:
    """An error's first line, for a one-line message (its type's name when it says nothing)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def port_offset_from_environment() -> int:
    """``$MEDOBS_PORT_OFFSET`` (0 when unset), read when a command runs: a bad value is one line."""
    text = os.environ.get("MEDOBS_PORT_OFFSET", "").strip() or "0"
    try:
        return int(text)
    except ValueError:
        raise UserError(f"MEDOBS_PORT_OFFSET must be a whole number, not {text!r}") from None


def package_data(package: str, *parts: str) -> Path:
    """A file or folder shipped inside ``package`` (``package_data("slo", "specs")``).

    Read with :mod:`importlib.resources`, so it is found wherever the package is installed; a
    wheel is installed unzipped, so the resource is a real path that other tools can read too.
    """
    path = Path(str(resources.files(package))).joinpath(*parts)
    if not path.exists():
        raise UserError(f"{package}/{'/'.join(parts)} is missing from the installed package: reinstall medobs")
    return path
