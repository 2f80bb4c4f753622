# citypin: two commands on a fresh machine.
#   make run   install what is missing, build, start the embedded PostGIS, load the sample city,
#              serve http://127.0.0.1:8080
#   make test  the same prerequisites, then every test (unit, API, real clients, browser)

SHELL := /bin/bash
# Third-party data (the LA 311 sample and boundaries) is read where it lies, never copied here.
CITYPIN_SHARED_DATA ?= $(abspath ../shared/data)
export CITYPIN_SHARED_DATA
SAMPLE ?= $(CITYPIN_SHARED_DATA)/la311/la311_normalized.csv
AREAS ?= $(CITYPIN_SHARED_DATA)/la311/la-city-council-districts-2012.json

.PHONY: run test deps web lint sqlx-prepare sqlx-check bench bench-quick clean-db

deps:
	@scripts/install-deps.sh

web: deps
	@if [ -f web-map/package.json ]; then cd web-map && npm ci --no-audit --no-fund && npm run build; fi

run: deps web
	cargo build --release --bin citypin
	CITYPIN_SAMPLE=$${CITYPIN_SAMPLE-$(SAMPLE)} CITYPIN_AREAS=$${CITYPIN_AREAS-$(AREAS)} ./target/release/citypin serve

test: deps web
	scripts/with-test-db.sh scripts/run-tests.sh

# Clippy builds offline, like every build (.cargo/config.toml sets SQLX_OFFLINE=true): the
# checked queries compile from their descriptions in .sqlx/, so a query changed without
# `make sqlx-prepare` fails here; sqlx-check then catches a changed schema (~20 s).
lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	scripts/check-migrations.sh
	$(MAKE) --no-print-directory sqlx-check

# Regenerates .sqlx/ (commit it) after a query or a migration changes: the checked queries are
# described against a fresh database in the private test cluster, migrated from migrations/.
sqlx-prepare:
	scripts/with-test-db.sh scripts/sqlx-prepare.sh

# Fails if .sqlx/ is not what sqlx-prepare would write now (e.g. a migration changed a type).
sqlx-check:
	scripts/with-test-db.sh scripts/sqlx-prepare.sh --check

# The benchmark suite (BENCHMARKS.md): release build, a private PostGIS, generated data at 100k,
# 1M and 5M incidents, every HTTP scenario side by side with PostGIS; results in target/bench/.
bench: deps
	scripts/bench.sh

# The same at 100k incidents only, with shorter runs (a few minutes).
bench-quick: deps
	scripts/bench.sh --quick

# Drops the local embedded cluster (all local data!).
clean-db:
	./target/debug/citypin postgres stop 2>/dev/null || true
	rm -rf .citypin
