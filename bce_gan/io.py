"""Atomic file writes: a file is written under a temporary name in its folder, then renamed.

A process killed at any moment (SIGKILL included) leaves either the old file or the new one, never a
truncated one. Every result file of this project is written through these functions.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["atomic_path", "json_key", "write_text", "write_json", "write_jsonl", "read_jsonl", "save_figure"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path beside ``path``; renames it onto ``path`` if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    suffix = os.path.splitext(path)[1]  # keep the extension: matplotlib picks the format from it
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def json_key(obj: Any) -> str:
    """A canonical JSON string of ``obj``: equal for equal contents, whatever the key order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a JSON-lines file; ``[]`` if it does not exist."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_figure(fig, path: str | os.PathLike, **kwargs: Any) -> None:
    """``fig.savefig`` to ``path``, atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, **kwargs)
