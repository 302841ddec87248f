"""A folder a command writes generated files into, owning only the files it wrote.

The command keeps a manifest in the folder (``.medobs-<command>.json``: its format, the medobs
version, each generated path with its sha256). A run refuses a path that holds a file it did not
write (unless told to adopt it), writes each new or changed file atomically (a temporary file
beside it, then ``os.replace``), removes the files its previous run wrote that are no longer
generated (and the folders that removal empties), and writes the manifest last. Every other file
and folder is left alone.

A run killed mid-way leaves each file old or new, never a mix: before it changes anything, a run
records what it is about to write (``.medobs-<command>.pending.json``: each path with the sha256
of its new text, the run's pid and start time) and removes that record only after the manifest.
While the record is there, ``--check`` says in one line that a run was interrupted, and the next
run finishes the job: it takes the files the interrupted run wrote as its own (as it does a file
that already holds exactly the generated text).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from medobs import UserError, __version__
from medobs.core.files import read_text, temporary_path, write_atomic
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


class Interrupted(UserError):
    """The folder's last run did not finish: ``--check`` cannot compare it (exit status 1, as stale)."""

    exit_code = 1


@dataclass(frozen=True)
class OwnedFolder:
    """``root``, as written by ``medobs <command>`` (``command`` names the manifest)."""

    root: Path
    command: str

    @property
    def manifest_path(self) -> Path:
        return self.root / f".medobs-{self.command.replace(' ', '-')}.json"

    @property
    def pending_path(self) -> Path:
        return self.root / f".medobs-{self.command.replace(' ', '-')}.pending.json"

    def pending(self) -> dict[str, list[str]]:
        """What unfinished runs set out to write, ``{path: [sha256, ...]}`` (empty when every run
        finished)."""
        return self._run_record().get("files", {})

    def _run_record(self) -> dict:
        return self._record(self.pending_path, "run record", lambda files: all(
            isinstance(hashes, list) and all(isinstance(h, str) for h in hashes) for hashes in files.values()
        ))

    def interrupted(self) -> str:
        """One line naming the interrupted run, or "" when the last run finished."""
        record = self._run_record()
        if not record:
            return ""
        pid, started = record.get("pid"), record.get("started")
        run = f" (pid {pid}, started {started})" if isinstance(pid, int) and isinstance(started, str) else ""
        return (
            f"{self.root}: a `medobs {self.command}` run{run} was interrupted before it finished "
            f"({self.pending_path.name} is its record): run it again"
        )

    def manifest(self) -> dict[str, str]:
        """What the previous run wrote: ``{path: sha256}`` (empty before the first run)."""
        return self._record(
            self.manifest_path, "manifest", lambda files: all(isinstance(h, str) for h in files.values())
        ).get("files", {})

    def _record(self, path: Path, what: str, valid: Callable[[dict], bool]) -> dict:
        """The manifest or run record at ``path``, its ``files`` checked ({} when there is none)."""
        if not path.exists():
            return {}
        try:
            text = read_text(path, what=f"medobs {what}")
        except UserError as error:
            raise UserError(f"{error}: move it away") from None
        try:
            content = json.loads(text)
            files = content["files"] if content.get("format") == FORMAT else None
        except (ValueError, AttributeError, KeyError, RecursionError):
            files = None
        if not isinstance(files, dict) or not all(map(_inside, files)) or not valid(files):
            raise UserError(f"{path} is not a medobs {what} (format {FORMAT}): move it away")
        return content

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
        interrupted = self.interrupted()
        if interrupted:
            raise Interrupted(interrupted)
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
        unfinished = self.pending()
        encoded = {path: text.encode() for path, text in files.items()}
        current = {path: _read(self.root / path) for path in encoded}
        for path, data in encoded.items():
            ours = path in previous or sha256(current[path] or b"") in unfinished.get(path, ())
            self._refuse_collision(path, ours, current[path], data, force)
        self._record_run(unfinished, encoded)
        changes = []
        for path, data in encoded.items():
            if current[path] != data:
                write_atomic(self.root / path, data)
                changes.append(f"{'wrote:  ' if current[path] is None else 'updated:'}   {path}")
            else:  # up to date; a run killed while writing it may have left its temporary file
                temporary_path(self.root / path).unlink(missing_ok=True)
        for path in sorted((set(previous) | set(unfinished)) - set(encoded)):
            target = self.root / path
            data = _read(target)
            if data is None:
                continue
            if sha256(data) not in {previous.get(path), *unfinished.get(path, ())}:
                changes.append(f"kept:      {path} (edited since it was generated; no longer generated)")
                continue
            target.unlink()
            self._remove_emptied_folders(target.parent)
            changes.append(f"removed:   {path}")
        write_atomic(self.manifest_path, self.manifest_text(files).encode())
        self.pending_path.unlink()
        return changes

    def _record_run(self, unfinished: dict[str, list[str]], encoded: dict[str, bytes]) -> None:
        """Record what this run is about to write (with what earlier unfinished runs wrote)."""
        files = {path: set(hashes) for path, hashes in unfinished.items()}
        for path, data in encoded.items():
            files.setdefault(path, set()).add(sha256(data))
        write_atomic(self.pending_path, to_json({
            "command": f"medobs {self.command}",
            "files": {path: sorted(hashes) for path, hashes in sorted(files.items())},
            "format": FORMAT,
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }))

    # --- helpers -------------------------------------------------------------------------------

    def _check_paths(self, files: dict[str, str]) -> None:
        for path in files:
            if not _inside(path) or path in (self.manifest_path.name, self.pending_path.name):
                raise ValueError(f"a generator cannot write {path!r} into the folder")

    def _refuse_collision(self, path: str, ours: bool, current: bytes | None, data: bytes, force: bool) -> None:
        """UserError when writing ``path`` would replace something the command did not write."""
        target = self.root / path
        for parent in reversed(PurePosixPath(path).parents[:-1]):
            folder = self.root / parent
            if folder.exists() and not folder.is_dir():
                raise UserError(f"{folder} is a file where medobs writes the folder of {path}: move it")
        if target.is_dir():
            raise UserError(f"{target} is a folder where medobs writes a file: move it or choose another --out")
        theirs = (current is not None or target.is_symlink()) and not ours and current != data
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
