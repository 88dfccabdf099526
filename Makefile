# Two commands do everything on a fresh clone: `make demo` and `make test`.
# torch is installed through constraints-cpu.txt (the CPU build); see README for CUDA.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install demo test docs bench clean

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints-cpu.txt -e '.[test,docs]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/grokinterp demo

test: $(STAMP)
	$(PY) -m pytest -q

# the docs site, built into docs/_build/html; executes the notebooks in quick mode (GROKINTERP_QUICK=1)
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -E -b html docs docs/_build/html
	@echo "docs: open docs/_build/html/index.html"

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache docs/_build
