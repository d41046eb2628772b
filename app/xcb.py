"""Can Qt's X11 platform plugin load here? Named missing libraries instead of Qt's plugin error.

Qt's xcb plugin needs a set of xcb helper libraries that many Linux desktops (and build machines)
lack. Without them Qt prints a page about "Could not load the Qt platform plugin" and aborts;
`desktop_problem` says instead, in one line, which packages to install. The same table lets
`build.spec` refuse a bundle whose plugin could not load (it carries the build machine's copies).
No Qt import here: this runs before the QApplication exists.
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
from pathlib import Path

#: Every library the xcb plugin (libqxcb.so, libQt6XcbQpa.so.6) links that a desktop may lack,
#: with its Debian/Ubuntu package: the README's list ("Linux desktop packages").
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libX11.so.6": "libx11-6",
}

_MISSING = re.compile(r"(lib[\w.+-]+\.so[\w.]*): cannot open shared object file")


def packages_for(libraries: list[str]) -> list[str]:
    """Debian/Ubuntu package names for library sonames (the soname itself when unknown)."""
    return [XCB_LIBRARIES.get(name, name) for name in libraries]


def install_hint(libraries: list[str]) -> str:
    return "sudo apt install " + " ".join(packages_for(libraries))


def xcb_plugin_path() -> Path | None:
    """The xcb platform plugin of the PySide6 this process would use (found without importing Qt)."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        for candidate in (Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so", Path(root) / "plugins" / "platforms" / "libqxcb.so"):
            if candidate.is_file():
                return candidate
    return None


def _loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def missing_xcb_libraries(plugin: Path | None = None) -> list[str]:
    """The libraries the xcb plugin needs that this machine cannot load ([] when it loads)."""
    plugin = plugin or xcb_plugin_path()
    if plugin is None:
        return []
    try:
        ctypes.CDLL(str(plugin))
        return []
    except OSError as exc:
        first = _MISSING.findall(str(exc))
    missing = [name for name in XCB_LIBRARIES if not _loads(name)]
    return missing + [name for name in first if name not in missing]


def uses_xcb(environ: os._Environ | dict[str, str] = os.environ) -> bool:
    """Whether Qt would pick its X11 plugin: Linux, no other platform asked for, not a Wayland session."""
    if not sys.platform.startswith("linux"):
        return False
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0].split(";")[0] == "xcb"
    return environ.get("XDG_SESSION_TYPE", "") != "wayland" or not environ.get("WAYLAND_DISPLAY")


def desktop_problem(environ: os._Environ | dict[str, str] = os.environ) -> str | None:
    """One line saying why the window cannot open here, or None when nothing is known to be wrong."""
    if not uses_xcb(environ):
        return None
    missing = missing_xcb_libraries()
    if missing:
        return (
            f"cannot open the window: Qt's X11 plugin needs {', '.join(missing)}, missing here; "
            f"install them ({install_hint(missing)}; the README lists them all), or use `mask-checker batch`"
        )
    if not environ.get("DISPLAY"):
        return "cannot open the window: no X display (DISPLAY is not set); on a server use `mask-checker batch`"
    return None
