# Two commands on a fresh machine (see README):  make demo   |   make test
.PHONY: setup demo test lint bench clean-demo

STAMP := .venv/.installed

$(STAMP): pyproject.toml scripts/bootstrap.sh
	scripts/bootstrap.sh

setup: $(STAMP)

demo: $(STAMP)
	.venv/bin/uniflow demo

test: $(STAMP)
	scripts/test.sh

bench: $(STAMP)
	.venv/bin/python benchmarks/bench_prepare.py

clean-demo:
	rm -rf data/demo data/mirror

lint: $(STAMP)
	.venv/bin/ruff check uniflow flows tests benchmarks
