# Entry points for developers and CI; all logic lives in scripts/harness.py.
#   make test                          THE test command (CI runs it via .ci/run)
#   TEST_TAGS=/bjet_api_sync:TestX make test
#   make run [PORT=8069] [DB=bjet_demo] [WORKERS=N]
#   make bench
#   make chaos [CHAOS_SEED=N]             queue, direct call, upserts under faults (<10 min)
#   make lint                          ruff, then OCA's pylint-odoo (.pylintrc)
#   make pot                           regenerate i18n/bjet_api_sync.pot from the code
# The harness needs only a Python 3 interpreter; it finds or builds Odoo 18
# itself (ODOO_PYTHON, ODOO_SRC, ODOO_REF: see docs/CONTRIBUTING.md, "The harness").
HARNESS := python3 scripts/harness.py

# Command-line variables (make run PORT=8070) must reach the harness environment.
export PORT DB TEST_TAGS KEEP_DB BENCH WORKERS CHAOS_SEED ODOO_PYTHON ODOO_SRC ODOO_REF

.PHONY: test run bench chaos lint pot

test:
	$(HARNESS) test

run:
	$(HARNESS) run

bench:
	$(HARNESS) bench

chaos:
	$(HARNESS) chaos

lint:
	$(HARNESS) lint

pot:
	$(HARNESS) pot
