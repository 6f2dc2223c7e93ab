"""Bringing files up to the lines a run has rendered, appending only what is missing.

A file is trusted to hold a prefix of its rendered lines (it only ever gets whole rendered
lines appended). What a file already has is counted once, when it is first touched, after
cutting off a line that a crash left half-written; from then on only the tail is appended. A
file that disappears is written again from its first line.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _cut_torn_tail(path: Path) -> bytes:
    """The file's complete lines; a last line without its newline is cut off the file."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        os.truncate(path, len(complete))
    return complete


def _adopt(path: Path, fresh: bool) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fresh or not path.exists():
        path.write_bytes(b"")
        return b""
    return _cut_torn_tail(path)


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8", newline="\n") as file:
        file.write("".join(line + "\n" for line in lines))


class FileStore:
    """Files under one root folder. `fresh` rewrites each file from scratch the first time it is
    touched (the rebuild command); otherwise existing lines are kept and skipped."""

    def __init__(self, root: Path, *, fresh: bool = False) -> None:
        self.root = Path(root)
        self.fresh = fresh
        self._on_disk: dict[Path, int] = {}

    def sync(self, relative: Path, lines: list[str]) -> int:
        """Append the lines the file lacks; return how many. Raises OSError (disk full, read-only,
        a path that cannot be a folder); the file is then counted afresh on the next try."""
        path = self.root / relative
        known = self._on_disk.get(path)
        if known is None or (known and not path.exists()):
            known = _adopt(path, self.fresh and known is None).count(b"\n")
        missing = lines[known:]
        try:
            if missing:
                _append(path, missing)
        except OSError:
            self._on_disk.pop(path, None)
            raise
        self._on_disk[path] = max(known, len(lines))
        return len(missing)

    def forget(self, relative_dir: Path) -> None:
        folder = self.root / relative_dir
        for path in [p for p in self._on_disk if p.parent == folder]:
            del self._on_disk[path]


def _digest(line: bytes | str) -> bytes:
    raw = line.encode() if isinstance(line, str) else line
    return hashlib.blake2b(raw, digest_size=12).digest()


class DiagnosticLog:
    """The aggregate log across runs. Its lines interleave runs in whatever order partitions
    were read, so a line count proves nothing here: a line is known by its content instead
    (each carries its time, run and counts, so two different events never render the same)."""

    def __init__(self, path: Path, *, fresh: bool = False) -> None:
        self.path = Path(path)
        self.fresh = fresh
        self._seen: set[bytes] | None = None

    def append(self, lines: list[str]) -> int:
        if self._seen is None or not self.path.exists():
            existing = _adopt(self.path, self.fresh and self._seen is None)
            self._seen = {_digest(line) for line in existing.splitlines()}
        new = [line for line in dict.fromkeys(lines) if _digest(line) not in self._seen]
        try:
            if new:
                _append(self.path, new)
        except OSError:
            self._seen = None
            raise
        self._seen.update(_digest(line) for line in new)
        return len(new)
