# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY := .venv/bin/python

.venv/.installed: setup.cfg pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e ".[test,bench]"
	touch $@

.PHONY: setup test demo
setup: .venv/.installed /usr/bin/chromium

# the studio's browser test drives Debian's chromium (Playwright cannot download its own browser here)
/usr/bin/chromium:
	apt-get update -q && apt-get install -y -q chromium || echo "the browser test needs Debian's chromium: apt-get install chromium"

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) eval.py --config configs/demo/texture.yaml
