# Entry points for developers and CI; all logic lives in scripts/harness.py.
#   make test                          THE test command (CI runs it via .ci/run)
#   TEST_TAGS=/bjet_api_sync:TestX make test
#   make run [PORT=8069] [DB=bjet_demo]
#   make bench
#   make lint
# PYTHON must be an interpreter that can `import odoo` (Odoo 18).
PYTHON ?= python3
HARNESS := $(PYTHON) scripts/harness.py

# Command-line variables (make run PORT=8070) must reach the harness environment.
export PORT DB TEST_TAGS KEEP_DB BENCH

.PHONY: test run bench lint

test:
	$(HARNESS) test

run:
	$(HARNESS) run

bench:
	$(HARNESS) bench

lint:
	$(HARNESS) lint
