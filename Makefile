# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= outputs

export TF_CPP_MIN_LOG_LEVEL ?= 2
export KERAS_BACKEND ?= tensorflow
export MPLBACKEND ?= Agg

.PHONY: demo test test-slow install clean

# Create the virtual environment and install the package with its pinned
# dependencies (setup.py holds every pin).
$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) tutorials/attention_pooling.py --out $(OUT)/attention_pooling

# The suite CI runs: everything not marked slow.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q tests

# Long training tests, kept out of CI.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
