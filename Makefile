# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY := .venv/bin/python

.venv/.installed: setup.cfg pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e ".[test,bench]"
	touch $@

.PHONY: setup test demo
setup: .venv/.installed

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) eval.py --config configs/demo/texture.yaml
