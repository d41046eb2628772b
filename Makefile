# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check

.PHONY: run test bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Runtime only (numpy, OpenCV, onnxruntime, PySide6): what the app needs, no torch.
$(VENV)/.runtime: pyproject.toml | $(PY)
	$(PIP) install -q -e .
	touch $@

# Everything: training (torch, timm, facenet-pytorch) and the test tools.
$(VENV)/.dev: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[train,dev]'
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime
	$(VENV)/bin/mask-checker

test: $(VENV)/.dev
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: $(VENV)/.dev
	$(PY) bench/analyzer.py
	$(PY) bench/batch.py
	$(PY) bench/train_cache.py

clean:
	rm -rf out build dist .pytest_cache
