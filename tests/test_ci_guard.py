"""Under CI=true a missing data folder fails the run with the reason; locally those tests skip."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pytest_run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """A test of the suite that needs the real photos (tests/test_analyzer.py's detection-only check) run with the given environment."""
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "MASK_CHECKER_DATA")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_analyzer.py", "-k", "detection_only"],
        cwd=REPO, env={**clean, "MASK_CHECKER_DATA": str(tmp_path / "no such folder"), **env},
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_ci_without_the_data_fails_with_the_reason(tmp_path):
    result = pytest_run(tmp_path, CI="true")
    assert result.returncode not in (0, 5), result.stdout[-2000:]
    assert "CI=true but the shared data folder is missing" in result.stdout + result.stderr


def test_locally_without_the_data_the_data_tests_skip(tmp_path):
    result = pytest_run(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "1 skipped" in result.stdout and "failed" not in result.stdout
