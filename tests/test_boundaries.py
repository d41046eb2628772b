"""The shape of the project: core needs neither Qt nor torch; telemetry is off before ORT loads."""
import re
import subprocess
import sys

from tests.conftest import REPO


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_core_imports_without_qt_or_torch():
    loaded = run_python(
        "import sys, core.analyzer, core.batch, core.draw, core.live, core.tracker\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'timm', 'facenet_pytorch', 'app', 'training')))"
    )
    assert loaded == "[]"


def test_telemetry_is_disabled_before_onnxruntime_is_imported():
    out = run_python(
        "import os, sys\n"
        "import core.ort\n"
        "print(os.environ.get('ORT_DISABLE_TELEMETRY'), 'onnxruntime' in sys.modules)"
    )
    assert out == "1 True"


def test_no_module_in_core_imports_onnxruntime_directly():
    offenders = [
        path.name for path in (REPO / "core").glob("*.py")
        if path.name != "ort.py" and "import onnxruntime" in path.read_text()
    ]
    assert offenders == [], "build sessions through core.ort so the environment and thread policy apply"


#: an import statement of the app package (not of a name that merely starts with "app", e.g. apply_teacher)
IMPORTS_APP = re.compile(r"^\s*(from\s+app(\.|\s)|import\s+app(\.|\s|,|$))", re.MULTILINE)


def test_training_never_imports_app():
    offenders = [p.name for p in (REPO / "training").rglob("*.py") if IMPORTS_APP.search(p.read_text())]
    assert offenders == []


def test_the_app_import_check_sees_imports_and_only_imports():
    for line in ("from app import main", "from app.live import LiveView", "import app", "    import app.toolkit as t"):
        assert IMPORTS_APP.search(line), line
    for line in ("from training.teacher.pseudo import apply_teacher", "import apply", "# the app imports core", "x = app"):
        assert not IMPORTS_APP.search(line), line
