"""medobs: observability and SLOs for the medical-imaging ML platform."""

import os
from pathlib import Path

__version__ = "0.1.0"

#: The source checkout (the folder holding pyproject.toml, build/, slo/specs/ ...).
REPO_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status 2, no traceback."""


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
