"""PySide6 releases known to break the app, checked where pip's pin cannot reach.

pyproject.toml excludes them already; this catches an environment set up another way (a
--no-deps install, a distribution package) before it bites, and lets build.spec refuse to
freeze one into a bundle.
"""
from __future__ import annotations

import sys

#: (release, the Python versions it breaks on, why). 6.12.0 drops a reference to None on every
#: binding call that returns nothing; on Python < 3.12 (None is not immortal) the live view dies
#: with "none_dealloc: deallocating None" after ~20 s (tests/test_qt_refcount.py).
BROKEN_RELEASES: list[tuple[str, tuple[int, int], str]] = [
    ("6.12.0", (3, 12), "leaks references to None: the live view crashes after ~20 s"),
]


def toolkit_problem(version: str | None = None, python: tuple[int, int] | None = None) -> str | None:
    """One line when the installed (or given) PySide6 is a broken release for this Python."""
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            version = installed("PySide6-Essentials")
        except PackageNotFoundError:
            return None
    python = python or sys.version_info[:2]
    for release, fixed_on, why in BROKEN_RELEASES:
        if version == release and python < fixed_on:
            return (
                f"PySide6 {version} on Python {python[0]}.{python[1]} {why}; "
                f"install another release (pip install 'PySide6-Essentials!={release}')"
            )
    return None
