"""A folder a command writes generated files into, owning only the files it wrote.

The command keeps a manifest in the folder (``.medobs-<command>.json``: its format, the medobs
version, each generated path with its sha256). A run refuses a path that holds a file it did not
write (unless told to adopt it), writes each new or changed file atomically (a temporary file
beside it, then ``os.replace``), removes the files its previous run wrote that are no longer
generated (and the folders that removal empties), and writes the manifest last. Every other file
and folder is left alone. A run killed mid-way leaves each file old or new; the next run finishes
the job: a file that already holds exactly the generated text is taken as the command's own.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medobs import UserError, __version__
from medobs.core.output import to_json

FORMAT = 1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes | None:
    """A file's bytes; None when there is no file there."""
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _temporary(target: Path) -> Path:
    """Where ``target``'s next text is written first (a fixed name: a rerun clears a leftover)."""
    return target.with_name(f".{target.name}.medobs-tmp")


def _write_atomically(target: Path, data: bytes) -> None:
    """Replace ``target`` by ``data`` in one step: a reader sees the old file or the new one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary(target)
    try:
        temporary.write_bytes(data)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class OwnedFolder:
    """``root``, as written by ``medobs <command>`` (``command`` names the manifest)."""

    root: Path
    command: str

    @property
    def manifest_path(self) -> Path:
        return self.root / f".medobs-{self.command.replace(' ', '-')}.json"

    def manifest(self) -> dict[str, str]:
        """What the previous run wrote: ``{path: sha256}`` (empty before the first run)."""
        data = _read(self.manifest_path)
        if data is None:
            return {}
        try:
            content = json.loads(data)
            files = content["files"] if content.get("format") == FORMAT else None
        except (ValueError, AttributeError, KeyError):
            files = None
        if not isinstance(files, dict) or not all(_inside(p) and isinstance(h, str) for p, h in files.items()):
            raise UserError(f"{self.manifest_path} is not a medobs manifest (format {FORMAT}): move it away")
        return files

    def manifest_text(self, files: dict[str, str]) -> str:
        """The manifest a run that generated ``files`` writes (deterministic: sorted, no time)."""
        return to_json({
            "command": f"medobs {self.command}",
            "files": {path: sha256(text.encode()) for path, text in sorted(files.items())},
            "format": FORMAT,
            "generator": f"medobs {__version__}",
        })

    def differences(self, files: dict[str, str]) -> list[str]:
        """One line per generated file that is missing or changed, and per file the previous run
        generated that is still there but no longer generated; other files are not looked at."""
        self._check_paths(files)
        previous = self.manifest()
        expected = {**files, self.manifest_path.name: self.manifest_text(files)}
        lines = []
        for path in sorted(set(previous) | set(expected)):
            data = _read(self.root / path)
            if path not in expected:
                if data is not None:
                    lines.append(f"left over: {path}")
            elif data is None:
                lines.append(f"missing:   {path}")
            elif data != expected[path].encode():
                lines.append(f"changed:   {path}")
        return lines

    def write(self, files: dict[str, str], *, force: bool = False) -> list[str]:
        """Bring the generated files of ``root`` to ``files``; one line per change.

        A path holding a file the previous run did not write is refused (``force``: adopted)."""
        try:
            return self._write(files, force)
        except OSError as error:
            raise UserError(f"cannot write {error.filename or self.root}: {error.strerror or error}") from None

    def _write(self, files: dict[str, str], force: bool) -> list[str]:
        self._check_paths(files)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root} is not a folder")
        previous = self.manifest()
        encoded = {path: text.encode() for path, text in files.items()}
        current = {path: _read(self.root / path) for path in encoded}
        for path, data in encoded.items():
            self._refuse_collision(path, previous, current[path], data, force)
        changes = []
        for path, data in encoded.items():
            if current[path] != data:
                _write_atomically(self.root / path, data)
                changes.append(f"{'wrote:  ' if current[path] is None else 'updated:'}   {path}")
            else:  # up to date; a run killed while writing it may have left its temporary file
                _temporary(self.root / path).unlink(missing_ok=True)
        for path in sorted(set(previous) - set(encoded)):
            target = self.root / path
            data = _read(target)
            if data is None:
                continue
            if sha256(data) != previous[path]:
                changes.append(f"kept:      {path} (edited since it was generated; no longer generated)")
                continue
            target.unlink()
            self._remove_emptied_folders(target.parent)
            changes.append(f"removed:   {path}")
        _write_atomically(self.manifest_path, self.manifest_text(files).encode())
        return changes

    # --- helpers -------------------------------------------------------------------------------

    def _check_paths(self, files: dict[str, str]) -> None:
        for path in files:
            if not _inside(path) or path == self.manifest_path.name:
                raise ValueError(f"a generator cannot write {path!r} into the folder")

    def _refuse_collision(
        self, path: str, previous: dict[str, str], current: bytes | None, data: bytes, force: bool
    ) -> None:
        """UserError when writing ``path`` would replace something the command did not write."""
        target = self.root / path
        for parent in reversed(PurePosixPath(path).parents[:-1]):
            folder = self.root / parent
            if folder.exists() and not folder.is_dir():
                raise UserError(f"{folder} is a file where medobs writes the folder of {path}: move it")
        if target.is_dir():
            raise UserError(f"{target} is a folder where medobs writes a file: move it or choose another --out")
        theirs = (current is not None or target.is_symlink()) and path not in previous and current != data
        if theirs and not force:
            raise UserError(
                f"{target} exists and was not generated by medobs (not in {self.manifest_path.name}): "
                "move it, choose another --out, or pass --force to let medobs own it"
            )

    def _remove_emptied_folders(self, folder: Path) -> None:
        """Remove ``folder`` and its parents below ``root`` while a removal of ours left them empty."""
        while folder != self.root and folder.is_relative_to(self.root) and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _inside(path: str) -> bool:
    """Whether a manifest or generator path stays inside the folder (relative, no ``..``)."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and str(pure) == path
