# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: run test bench bundle clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime only (numpy, OpenCV, onnxruntime, PySide6): what the app needs, no torch.
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# The runtime plus PyInstaller: enough to build the desktop bundle (no torch needed).
$(VENV)/.bundle: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[bundle]'
	touch $@ $(VENV)/.runtime

# Everything: training (torch, timm, facenet-pytorch; Ray Tune), the test tools and PyInstaller.
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[train,tune,dev,bundle]'
	touch $@ $(VENV)/.runtime $(VENV)/.bundle

run: $(VENV)/.runtime
	$(VENV)/bin/mask-checker

test: $(VENV)/.dev
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: $(VENV)/.dev
	$(PY) bench/analyzer.py
	$(PY) bench/batch.py
	$(PY) bench/live.py
	$(PY) bench/train_cache.py

# One-folder desktop app in dist/mask-checker/ (build.spec); checks itself before reporting its size.
bundle: $(VENV)/.bundle
	$(VENV)/bin/pyinstaller --noconfirm build.spec
	dist/mask-checker/mask-checker --self-test
	du -sh dist/mask-checker

clean:
	rm -rf out build dist .pytest_cache
