"""core.files.find_images on real folder trees made here: what is listed, in what order, and
that awkward paths become error entries instead of exceptions or silent gaps."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from core import files
from core.files import FileEntry, find_images


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8 not decoded here")
    return path


def names(entries: list[FileEntry], root: Path) -> list[str]:
    return [entry.path.relative_to(root).as_posix() for entry in entries]


def ok(entries: list[FileEntry]) -> list[FileEntry]:
    return [entry for entry in entries if entry.error is None]


def errors(entries: list[FileEntry]) -> list[FileEntry]:
    return [entry for entry in entries if entry.error is not None]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for name in ["b.jpg", "A.JPG", "c.Png", "d.webp", "notes.txt", "._a.jpg", ".hidden.png", "e.jpeg"]:
        touch(root / name)
    touch(root / "sub" / "f.jpg")
    touch(root / "sub" / "deeper" / "g.tiff")
    touch(root / ".cache" / "h.jpg")
    (root / "folder.jpg").mkdir()
    return root


def test_empty_folder_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert list(find_images([tmp_path / "empty"])) == []
    assert list(find_images([tmp_path / "empty"], recursive=True)) == []


def test_top_level_only_sorted_case_insensitive(tree: Path) -> None:
    entries = list(find_images([tree]))
    assert errors(entries) == []
    # Uppercase .JPG found; ._a.jpg, .hidden.png, notes.txt, folder.jpg/ and sub/ left out.
    assert names(entries, tree) == ["A.JPG", "b.jpg", "c.Png", "d.webp", "e.jpeg"]


def test_recursive_goes_into_visible_subfolders(tree: Path) -> None:
    entries = list(find_images([tree], recursive=True))
    assert errors(entries) == []
    assert names(entries, tree) == [
        "A.JPG", "b.jpg", "c.Png", "d.webp", "e.jpeg", "sub/f.jpg", "sub/deeper/g.tiff",
    ]


def test_order_is_stable(tree: Path) -> None:
    first = list(find_images([tree], recursive=True))
    assert list(find_images([tree], recursive=True)) == first


def test_explicit_files_kept_whatever_their_name(tree: Path) -> None:
    given = [tree / "notes.txt", tree / "._a.jpg", tree / "b.jpg"]
    assert list(find_images(given)) == [FileEntry(p) for p in given]


def test_arguments_keep_their_order(tree: Path) -> None:
    entries = list(find_images([tree / "sub", tree / "b.jpg"]))
    assert names(entries, tree) == ["sub/f.jpg", "b.jpg"]


def test_missing_path_is_reported(tmp_path: Path) -> None:
    assert list(find_images([tmp_path / "nowhere"])) == [FileEntry(tmp_path / "nowhere", "not found")]


def test_dangling_symlinks_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    touch(root / "a.jpg")
    (root / "dead.jpg").symlink_to(root / "gone.jpg")
    (root / "dead.txt").symlink_to(root / "gone.txt")  # not an image name: ignored
    entries = list(find_images([root]))
    assert names(ok(entries), root) == ["a.jpg"]
    assert [(e.path.name, e.error) for e in errors(entries)] == [
        ("dead.jpg", "broken symlink: its target does not exist")
    ]
    # Given explicitly, too.
    assert list(find_images([root / "dead.jpg"]))[0].error.startswith("broken symlink")


def test_self_referencing_symlink(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "me.jpg").symlink_to(root / "me.jpg")
    [entry] = list(find_images([root]))
    assert entry.path == root / "me.jpg"
    assert entry.error == os.strerror(errno.ELOOP).lower()


def test_symlinked_file_is_followed(tmp_path: Path) -> None:
    target = touch(tmp_path / "elsewhere" / "real.jpg")
    root = tmp_path / "photos"
    root.mkdir()
    (root / "link.jpg").symlink_to(target)
    assert list(find_images([root])) == [FileEntry(root / "link.jpg")]


def test_symlink_loop_terminates_and_is_reported(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    touch(root / "a.jpg")
    touch(root / "sub" / "b.jpg")
    (root / "sub" / "up").symlink_to(root)  # sub/up -> photos: a cycle
    entries = list(find_images([root], recursive=True))
    assert names(ok(entries), root) == ["a.jpg", "sub/b.jpg"]
    [loop] = errors(entries)
    assert loop.path == root / "sub" / "up"
    assert loop.error.startswith("symlink loop")
    # Without recursion the link is just a subfolder that is not entered.
    assert errors(list(find_images([root]))) == []


def test_folder_reached_twice_is_listed_once(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    touch(root / "real" / "a.jpg")
    (root / "shortcut").symlink_to(root / "real")  # not a loop, just a second way in
    entries = list(find_images([root], recursive=True))
    assert errors(entries) == []
    assert len(entries) == 1 and entries[0].path.name == "a.jpg"


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "photos"
    touch(root / "a.jpg")
    touch(root / "locked" / "b.jpg")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(files.os, "scandir", scandir)
    entries = list(find_images([root], recursive=True))
    assert names(ok(entries), root) == ["a.jpg"]
    assert [(e.path.name, e.error) for e in errors(entries)] == [
        ("locked", "cannot list folder: permission denied")
    ]


def test_unreadable_folder_for_real(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    touch(locked / "b.jpg")
    locked.chmod(0)
    try:
        try:
            os.listdir(locked)
        except PermissionError:
            pass
        else:
            pytest.skip("running with privileges that list mode-000 folders (root)")
        assert list(find_images([locked])) == [FileEntry(locked, "cannot list folder: permission denied")]
    finally:
        locked.chmod(0o755)


def test_fifo_named_like_an_image_is_not_read(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    os.mkfifo(root / "pipe.jpg")
    assert list(find_images([root])) == [FileEntry(root / "pipe.jpg", "not a regular file")]


def test_unicode_names(tmp_path: Path) -> None:
    root = tmp_path / "фото"
    touch(root / "日本 1.jpg")
    assert list(find_images([root])) == [FileEntry(root / "日本 1.jpg")]


def test_is_image_name() -> None:
    assert files.is_image_name("X.JPEG")
    assert not files.is_image_name("._x.jpg")
    assert not files.is_image_name("x.jpg.txt")
