"""medobs: observability and SLOs for the medical-imaging ML platform."""

from pathlib import Path

__version__ = "0.1.0"

#: The source checkout (the folder holding pyproject.toml, build/, slo/specs/ ...).
REPO_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A mistake the user can fix: reported as one line, exit status 2, no traceback."""
