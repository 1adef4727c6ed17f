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

# Attention pooling (D2L's first model), then the main job: a Transformer
# trained on the embedded dates task, exported as a string-in/string-out
# SavedModel, and that export called from a fresh process.
demo: $(STAMP)
	$(PY) tutorials/attention_pooling.py --out $(OUT)/attention_pooling
	$(VENV)/bin/keras-attention train translation --data dates --model transformer \
		--epochs 6 --verbose 2 --out $(OUT)/dates --export saved_models/dates
	$(VENV)/bin/keras-attention translate saved_models/dates \
		"the third of may , nineteen ninety" "december 25 , 2001" "17 august 1996"

# The suite CI runs: everything not marked slow.
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n 2 -q tests

# Long training tests, kept out of CI.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q tests

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache *.egg-info
