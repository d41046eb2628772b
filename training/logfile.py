"""Copy the log of a long step into a file next to its results, for later reading."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def log_to_file(path: Path, level: int = logging.INFO) -> Iterator[None]:
    """Everything logged at `level` or above while the block runs is appended to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    previous = root.level
    quieted = []
    if root.level > level:
        # Let the records through to the file, but keep the console as verbose as it was.
        for other in root.handlers:
            if other.level < previous:
                quieted.append((other, other.level))
                other.setLevel(previous)
        root.setLevel(level)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for other, old_level in quieted:
            other.setLevel(old_level)
        handler.close()
