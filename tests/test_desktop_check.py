"""`make run` on a desktop without Qt's xcb helper libraries: one line naming the packages, not Qt's
page about platform plugins. The oracle is independent of app/xcb.py: PyInstaller's reading of the
plugin's dynamic section, resolved against this machine's libraries (what build.spec uses)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.xcb import desktop_problem, packages_for, xcb_plugin_path

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
REPO = Path(__file__).resolve().parents[1]


def unresolved_by_the_loader() -> list[str]:
    bindepend = pytest.importorskip("PyInstaller.depend.bindepend")
    plugin = xcb_plugin_path()
    assert plugin is not None, "PySide6 ships no xcb plugin here"
    return sorted({name for name, path in bindepend.get_imports(str(plugin), search_paths=[]) if path is None})


def start_the_app(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE", "DISPLAY")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli"], cwd=REPO, env={**clean, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_missing_xcb_helpers_are_named_in_one_line():
    missing = unresolved_by_the_loader()
    if not missing:
        assert desktop_problem({"DISPLAY": ":0"}) is None, "every library is here, yet the check objects"
        pytest.skip("this machine has every library the xcb plugin links (the check above passed)")
    result = start_the_app(DISPLAY=":99")
    assert result.returncode == 1
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{result.stdout}{result.stderr}"
    for package in packages_for(missing):
        assert package in lines[0]
    assert "qt.qpa.plugin" not in lines[0] and "apt install" in lines[0]


def test_no_display_is_said_in_one_line():
    if unresolved_by_the_loader():
        pytest.skip("the missing xcb helpers are reported first (test above)")
    result = start_the_app()
    assert result.returncode == 1
    assert "no X display (DISPLAY is not set)" in result.stdout + result.stderr


def test_other_platforms_are_not_checked():
    assert desktop_problem({"QT_QPA_PLATFORM": "offscreen"}) is None
    assert desktop_problem({"QT_QPA_PLATFORM": "wayland", "WAYLAND_DISPLAY": "wayland-0"}) is None
