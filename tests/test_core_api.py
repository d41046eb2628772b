"""`core` names its public API, and naming it costs nothing until a name is used."""
from __future__ import annotations

import subprocess
import sys

import core
from tests.conftest import REPO


def test_every_public_name_is_the_class_its_module_defines():
    assert {"FaceAnalyzer", "LiveAnalyzer", "BatchJob", "AnalyzerConfig", "DetectorConfig", "LiveConfig"} <= set(core.__all__)
    for name in core.__all__:
        value = getattr(core, name)
        assert value.__name__ == name and value.__module__.startswith("core.")


def test_light_modules_stay_light():
    """Importing core.labels must not pull in onnxruntime or OpenCV through core/__init__.py."""
    code = "import sys, core.labels; print('onnxruntime' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
