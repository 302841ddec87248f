"""Reading and writing the files a command is pointed at, the one way every command does it.

Reading: a file that is missing, unreadable, too large, or not UTF-8 is one line naming it (a
:class:`~medobs.UserError`), never a traceback. Writing: atomically, through a temporary file
beside the target and ``os.replace``, so a reader (or a run killed mid-way) sees the old file or
the new one, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path

from medobs import UserError

#: Largest file a command reads unless told otherwise: far above any spec or config, far below
#: what would exhaust memory.
READ_LIMIT_BYTES = 16 * 1024 * 1024


def read_text(path: Path, *, what: str = "file", limit: int = READ_LIMIT_BYTES, error: type[UserError] = UserError) -> str:
    """``path``'s text, decoded as UTF-8; ``what`` names the file in the one-line error."""
    try:
        with path.open("rb") as stream:
            data = stream.read(limit + 1)
    except OSError as failure:
        raise error(f"cannot read the {what} {path}: {failure.strerror or failure}") from None
    if len(data) > limit:
        raise error(f"the {what} {path} is larger than {limit // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failure:
        raise error(f"the {what} {path} is not UTF-8 text (byte {failure.start})") from None


def temporary_path(target: Path) -> Path:
    """Where ``target``'s next content is written first (a fixed name: a rerun clears a leftover)."""
    return target.with_name(f".{target.name}.medobs-tmp")


def write_atomic(target: Path, data: bytes | str, mode: int | None = None) -> None:
    """Replace ``target`` by ``data`` in one step: a reader sees the old file or the new one."""
    payload = data.encode() if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(target)
    try:
        with temporary.open("wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        if mode is not None:
            temporary.chmod(mode)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
