"""Turning the files and folders a user names into the list of photos to check.

Nothing is dropped silently and nothing raises: a path that cannot be listed or read comes out
as a `FileEntry` with an `error`, which the batch command writes as an error row; so does a photo
in a format this build cannot decode (HEIC, raw). Only names that are clearly not photos (other
extensions, hidden "._x.jpg" AppleDouble files) are skipped.
"""
from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.imageio import IMAGE_EXTENSIONS, UNREADABLE_PHOTO_EXTENSIONS, os_reason

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    """path: as the user would recognise it (not resolved through symlinks).
    error: None for a file to decode; otherwise a short reason it cannot be read."""

    path: Path
    error: str | None = None


def resolved(path: Path) -> Path:
    """`path` with symlinks followed as far as they go, for comparing two paths.

    Unlike `Path.resolve`, a symlink loop does not raise (Python 3.11 raises RuntimeError):
    the looping part is kept as written, so the comparison still works.
    """
    return Path(os.path.realpath(path))


def path_text(path: Path | str) -> str:
    """`path` as text that any UTF-8 file or terminal can hold.

    A name that is not valid UTF-8 arrives from the OS with "surrogate" characters, which
    cannot be written to a UTF-8 file; its undecodable bytes are shown as \\xNN instead.
    """
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def has_undecodable_name(path: Path | str) -> bool:
    """True when the path's bytes are not valid UTF-8 (so `path_text` had to escape some)."""
    return path_text(path) != os.fspath(path)


def is_image_name(name: str) -> bool:
    """A visible file name with one of the image suffixes, in any letter case."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _photo_entry(path: Path) -> FileEntry:
    """A regular file to decode, or an error entry for a photo format that cannot be decoded."""
    suffix = path.suffix.lower()
    if suffix in UNREADABLE_PHOTO_EXTENSIONS:
        return FileEntry(path, f"unsupported image format: {suffix[1:].upper()} (convert it to JPEG or PNG)")
    return FileEntry(path)


def find_images(paths: Iterable[Path], recursive: bool = False) -> Iterator[FileEntry]:
    """Yield the photos among `paths`, in the given order; folder contents sorted by name.

    A path given as a file is yielded whatever its extension (the user asked for it; decoding
    will say if it is not an image). A folder yields its visible image files, and with
    `recursive` those of its visible subfolders, depth first. Folder symlinks are followed,
    with each real folder walked once, so a link back to a parent cannot loop.
    """
    visited: dict[tuple[int, int], Path] = {}  # (st_dev, st_ino) of each folder walked
    for raw in paths:
        path = Path(raw)
        try:
            st = os.stat(path)
        except OSError as exc:
            yield FileEntry(path, _stat_reason(path, exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path, st, recursive, visited)
        elif stat.S_ISREG(st.st_mode):
            yield _photo_entry(path)
        else:
            yield FileEntry(path, "not a regular file")


def _walk(
    root: Path,
    root_stat: os.stat_result,
    recursive: bool,
    visited: dict[tuple[int, int], Path],
) -> Iterator[FileEntry]:
    """Depth-first listing of one folder; an explicit stack so depth cannot hit recursion limits."""
    # Each item: (folder, its stat, the (dev, ino) keys of the folders above it in this walk).
    stack: list[tuple[Path, os.stat_result, frozenset[tuple[int, int]]]] = [
        (root, root_stat, frozenset())
    ]
    while stack:
        folder, folder_stat, ancestors = stack.pop()
        key = (folder_stat.st_dev, folder_stat.st_ino)
        if key in ancestors:
            yield FileEntry(folder, f"symlink loop: leads back to {visited[key]}")
            continue
        if key in visited:
            logger.debug("skipping %s: same folder as %s, already listed", folder, visited[key])
            continue
        visited[key] = folder

        try:
            with os.scandir(folder) as it:
                names = sorted((entry.name for entry in it), key=_sort_key)
        except OSError as exc:
            yield FileEntry(folder, f"cannot list folder: {os_reason(exc)}")
            continue

        subfolders: list[tuple[Path, os.stat_result]] = []
        for name in names:
            if name.startswith("."):
                continue
            path = folder / name
            try:
                st = os.stat(path)
            except OSError as exc:
                if _is_photo_name(name):
                    yield FileEntry(path, _stat_reason(path, exc))
                else:
                    logger.debug("skipping %s: %s", path, exc)
                continue
            if stat.S_ISDIR(st.st_mode):
                if recursive:
                    subfolders.append((path, st))
                continue
            if not _is_photo_name(name):
                continue
            if stat.S_ISREG(st.st_mode):
                yield _photo_entry(path)
            else:  # a FIFO or device named x.jpg: reading it could block or never end
                yield FileEntry(path, "not a regular file")

        # Subfolders after the folder's own files; reversed so they pop in sorted order.
        below = ancestors | {key}
        for path, st in reversed(subfolders):
            stack.append((path, st, below))


def _is_photo_name(name: str) -> bool:
    """An image name, or that of a photo format we cannot decode (listed as an error)."""
    return is_image_name(name) or (not name.startswith(".") and Path(name).suffix.lower() in UNREADABLE_PHOTO_EXTENSIONS)


def _sort_key(name: str) -> tuple[str, str]:
    """Case-insensitive name order (as file managers show it), ties broken by exact name."""
    return (name.casefold(), name)


def _stat_reason(path: Path, exc: OSError) -> str:
    """Why a path could not be looked at, telling a broken symlink from a missing path."""
    if isinstance(exc, FileNotFoundError):
        return "broken symlink: its target does not exist" if path.is_symlink() else "not found"
    return os_reason(exc)
