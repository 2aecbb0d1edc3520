# Grafana: dashboards as code and the HTTP API they query (included by the Makefile, which
# defines BIN and the venv target).

API_HOST ?= 127.0.0.1
API_PORT ?= 8000
# empty: the first store of HUNDI_STORE (environment or .hundi.env)
API_STORE ?=

.PHONY: grafana-dashboards grafana-test hundi-api bench-api

grafana-dashboards: venv ## Regenerate deploy/grafana/dashboards (dashboards as code)
	$(BIN)/python -m hundi.dashboards --out deploy/grafana/dashboards

grafana-test: venv ## Dashboards and API tests (committed JSON, schema, every panel query on real Cassandra)
	$(BIN)/pytest -q tests/dashboards tests/api

hundi-api: venv ## HTTP API for Grafana on API_HOST:API_PORT (hundi serve; API_STORE=url, default HUNDI_STORE)
	$(BIN)/hundi serve --host $(API_HOST) --port $(API_PORT) $(if $(API_STORE),--store $(API_STORE))

bench-api: services-up ## Market dashboard requests over a day of a busy symbol (real Cassandra, 2M trades): stored series vs raw data
	$(BIN)/python bench/api.py
