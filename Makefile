# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 5000
export TRACKER_SITE_ORIGINS ?= http://$(HOST):$(PORT),http://localhost:$(PORT)
export TRACKER_GEOIP_ASN_DB ?= $(CURDIR)/tests/data/geoip/GeoLite2-ASN-Test.mmdb
export TRACKER_GEOIP_CITY_DB ?= $(CURDIR)/tests/data/geoip/GeoIP2-City-Test.mmdb

.PHONY: install run test lint bench system-deps

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

system-deps:
	scripts/ensure-system-deps

run: install
	$(BIN)/flask --app tracker db upgrade
	$(BIN)/flask --app tracker demo-data --if-empty
	@echo "Demo site: http://$(HOST):$(PORT)/  ·  dashboard: http://$(HOST):$(PORT)/dashboard/"
	$(BIN)/flask --app tracker run --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check .

test: install system-deps lint
	$(BIN)/pytest -n 2 --dist loadgroup -q

bench: install system-deps
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)
