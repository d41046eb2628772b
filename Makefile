# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The versions `make test` last passed with (pip freeze); `make lock` refreshes it.
CONSTRAINTS := constraints.txt
INSTALL := $(PIP) install -q -c $(CONSTRAINTS)
LOCK_VENV := .venv-lock

.PHONY: run test bench bundle lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime only (numpy, OpenCV, onnxruntime, PySide6): what the app needs, no torch.
$(VENV)/.runtime: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(INSTALL) -e .
	touch $@

# The runtime plus PyInstaller: enough to build the desktop bundle (no torch needed).
$(VENV)/.bundle: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(INSTALL) -e '.[bundle]'
	touch $@ $(VENV)/.runtime

# Everything: training (torch, timm, facenet-pytorch; Ray Tune), the test tools and PyInstaller.
$(VENV)/.dev: pyproject.toml $(CONSTRAINTS) | $(PY)
	$(INSTALL) -e '.[train,tune,dev,bundle]'
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

# Refresh constraints.txt: the newest releases pyproject.toml allows, in a venv of their own, kept
# only if every test passes with them.
lock:
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip --disable-pip-version-check install -q -e '.[train,tune,dev,bundle]'
	QT_QPA_PLATFORM=offscreen $(LOCK_VENV)/bin/python -m pytest -x
	{ echo "# The versions 'make test' last passed with ($$($(LOCK_VENV)/bin/python -c 'import platform; print(platform.python_version(), platform.machine())'), $$(date -u +%F)). Refresh: make lock"; \
	  $(LOCK_VENV)/bin/python -m pip --disable-pip-version-check freeze --exclude-editable | grep -v '^#'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf out build dist .pytest_cache
