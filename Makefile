# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PY := .venv/bin/python

.venv/.installed: setup.cfg pyproject.toml
	python3 -m venv .venv
	.venv/bin/pip install -q --upgrade pip
	.venv/bin/pip install -q -e ".[test]"
	touch $@

.PHONY: setup test test-fast demo
setup: .venv/.installed /usr/bin/chromium

# the studio's browser test drives Debian's chromium (Playwright cannot download its own browser here)
/usr/bin/chromium:
	apt-get update -q && apt-get install -y -q chromium || echo "the browser test needs Debian's chromium: apt-get install chromium"

# the tiers are folders of tests/ (unit, integration, e2e); -n 2: one worker per core (pytest-xdist), tests that
# share something run in one worker through @pytest.mark.xdist_group
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -p no:cacheprovider

# for development: unit and integration without the slow ones (under two minutes on two cores)
test-fast: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -p no:cacheprovider -m "not slow" tests/unit tests/integration

demo: setup
	$(PY) eval.py --config configs/demo/texture.yaml
