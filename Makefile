# Set-up and checks. `make demo` and `make test` each build .venv from nothing on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Quiet TensorFlow's C++ start-up banners in demo and test output.
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: venv demo test lint docs clean

# The stamp is rebuilt whenever pyproject.toml changes, so a changed pin reinstalls.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# A real search on the bundled digits data with the bundled default space, then its best trial.
demo: venv
	rm -f demo.db demo.db-wal demo.db-shm
	$(BIN)/hpsearch run --study demo --storage demo.db --trials 8
	$(BIN)/hpsearch best demo --storage demo.db

lint: venv
	$(BIN)/ruff check search spaces storage tests scripts

# The suite includes the docs site's strict build and the docs' runnable blocks (tests/test_docs.py).
# Three pytest workers on two cores: a fault test waits on timers and subprocess start-ups (about a tenth
# of the run with two workers left the CPUs idle), and a third worker fills that time.
test: venv
	$(BIN)/ruff check search spaces storage tests scripts
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 3 --dist loadgroup --durations=15

# The docs site into site/, offline and strict (mkdocs.yml): a broken link, an option without help, an export
# without docstring or a missing benchmark result fails it. `make test` builds it too (tests/test_docs.py).
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo.db demo.db-wal demo.db-shm *.egg-info site build/docs-api
