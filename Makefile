# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= outputs

# TensorFlow's C++ start-up lines off, as the command has them (a value you set is kept).
export TF_CPP_MIN_LOG_LEVEL ?= 3
export KERAS_BACKEND ?= tensorflow
export MPLBACKEND ?= Agg

.PHONY: demo test lint format test-slow test-backends install check-python notebooks clean browser

# Create the virtual environment and install the package at the exact versions
# of constraints.txt (setup.py states only ranges), with the test tools, the
# notebook tools and the JAX and PyTorch CPU builds, so that `make test` also
# checks that the three Keras backends give the same numbers
# (tests/test_backends.py) and runs the tutorials as notebooks.
INSTALL := -c constraints.txt -e ".[dev,backends,notebooks]"

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(INSTALL)
	touch $(STAMP)

install: $(STAMP)

# Attention pooling (D2L's first model), then the main job: a Transformer
# trained on the embedded dates task, exported as a string-in/string-out
# SavedModel, that export called from a fresh process, and the attention
# explorer page of the run (checked: no weight on a masked key, no causal leak).
demo: $(STAMP)
	$(PY) tutorials/attention_pooling.py --out $(OUT)/attention_pooling
	$(VENV)/bin/keras-attention train translation --data dates --model transformer \
		--epochs 6 --verbose 2 --out $(OUT)/dates --export saved_models/dates
	$(VENV)/bin/keras-attention translate saved_models/dates \
		"the third of may , nineteen ninety" "december 25 , 2001" "17 august 1996"
	$(VENV)/bin/keras-attention explore saved_models/dates --check \
		--input "the third of may , nineteen ninety" --input "december 25 , 2001" \
		--out $(OUT)/dates/explorer.html

# Debian's Chromium and its driver, for the explorer page tests (tests/browser.py).
# Where they cannot be installed (no root, no apt) those tests skip, saying so.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		{ (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		chromium chromium-driver) || echo "chromium not installed: the browser tests will skip"; }

# The suite CI runs: the linter and the formatter's check (seconds), then
# every test not marked slow.
test: $(STAMP) browser lint
	$(PY) -m pytest -m "not slow" -n 2 -q tests

# ruff (pinned in constraints.txt, configured in pyproject.toml): `make lint`
# checks, `make format` rewrites.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Long training tests, kept out of CI.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q tests

# The whole layer and model test suite under JAX and under PyTorch (CPU
# builds, installed by the `backends` extra), then tests/test_backends.py
# under TensorFlow. Not part of `make test` (CI), to keep CI near 10 minutes
# rather than ~28 (measured on 2 cores, 2026-12-01: JAX 592 passed in 11 min 31 s,
# PyTorch 588 passed in 2 min 57 s, 18 min in all); `make test` runs the cross-backend check
# of tests/test_backends.py (every layer and builder, decoding, fit, export
# errors) on all three backends instead.
BACKEND_TESTS := tests/layers tests/models tests/test_ops.py tests/test_integration.py \
	tests/generate

test-backends: $(STAMP)
	$(PY) -m pip install --quiet $(INSTALL)
	KERAS_BACKEND=jax $(PY) -m pytest -m "not slow" -n 2 -q $(BACKEND_TESTS)
	KERAS_BACKEND=torch $(PY) -m pytest -m "not slow" -n 2 -q $(BACKEND_TESTS)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -m "not slow" -q tests/test_backends.py

# The package on the other Pythons it supports: for each of CHECK_PYTHONS that
# this machine has, a virtual environment .venv-check/VERSION, `pip install -c
# constraints.txt ".[dev,notebooks]"`, an import of the package and a few test
# files run there (.ci/check_python.py). Not part of `make test`: a new
# environment downloads about 1.3 GB of wheels. Measured on 2 cores
# (2026-12-02): 2.7 minutes a Python, of which installing 1.1 into a new
# environment, 0.2 into a kept one; `make clean` or CHECK_FLAGS=--fresh starts anew.
CHECK_PYTHONS ?= 3.12 3.13
CHECK_FLAGS ?=

check-python:
	$(PYTHON) .ci/check_python.py $(CHECK_FLAGS) $(CHECK_PYTHONS)

# The tutorials as Jupyter notebooks: tutorials/NAME.ipynb from each
# tutorials/NAME.py, a jupytext "percent" file (`# %%` cells), the one copy
# of the code. The .ipynb files are built, not committed; open them from
# tutorials/ (`jupyter lab tutorials/`), where they find their helpers.
NOTEBOOKS := $(patsubst %.py,%.ipynb,$(filter-out tutorials/_%,$(wildcard tutorials/*.py)))

notebooks: $(NOTEBOOKS)

tutorials/%.ipynb: tutorials/%.py $(STAMP)
	$(VENV)/bin/jupytext --quiet --to ipynb --set-kernel python3 --output $(@:.ipynb=.tmp.ipynb) $<
	mv $(@:.ipynb=.tmp.ipynb) $@

clean:
	rm -rf $(VENV) .venv-check $(OUT) .pytest_cache *.egg-info $(NOTEBOOKS)
