# The README's two commands: `make run` and `make test`. Each sets itself up from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# The AWS CDK command line, installed into this project from package-lock.json.
NODE_STAMP := node_modules/.installed
CDK := node_modules/.bin/cdk
# The browser the dashboard's test drives: Debian's chromium, installed with apt (as root, or through sudo).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# jsii (under aws-cdk-lib) prints a banner at every start on Node 20, past its end of life; it works.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

# The worker image's install steps are replayed in a test (tests/stack/test_dockerfile.py): pycurl's build needs
# libcurl's and OpenSSL's headers, as the image's build stage installs them.
CURL_CONFIG := /usr/bin/curl-config
# checkov, the template's second scanner (after cdk-nag), in a venv of its own: it pins boto3 and others far below dropq's.
SCAN := .venv-scan
CHECKOV := $(SCAN)/bin/checkov
CHECKOV_SPEC := checkov>=3.3.30,<3.4

.PHONY: run test bench lint format install synth clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

# `make run` needs dropq and the local cloud only: not the CDK, the linters or the browser driver of `make test`.
$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local]'
	touch $(RUN_STAMP)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

$(CHECKOV): Makefile
	test -x $(SCAN)/bin/python || $(PYTHON) -m venv $(SCAN)
	$(SCAN)/bin/python -m pip install --quiet --upgrade pip
	$(SCAN)/bin/python -m pip install --quiet '$(CHECKOV_SPEC)'
	touch $(CHECKOV)

$(CURL_CONFIG):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends libcurl4-openssl-dev libssl-dev

$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium

install: $(STAMP) $(NODE_STAMP)

# Options of `dropq up` go through ARGS: make run ARGS="--port 4600 --dashboard-port 8400".
run: $(RUN_STAMP)
	$(BIN)/dropq up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# Two pytest-xdist processes, a test file each at a time; a process that dies fails the run (replaced, it could hang it).
test: $(STAMP) $(NODE_STAMP) $(CHROMIUM) $(CURL_CONFIG) $(CHECKOV) lint
	DROPQ_CHECKOV=$(abspath $(CHECKOV)) $(BIN)/python -m pytest -n 2 --dist loadfile --max-worker-restart 0 -ra --durations=25

# Benchmarks side by side against one local moto server; the table goes to BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/python -m bench.run

# The CloudFormation template and assets, offline, no AWS account needed (into cdk.out/).
synth: $(STAMP) $(NODE_STAMP)
	$(CDK) synth --quiet --no-notices

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(SCAN) node_modules cdk.out .dropq .pytest_cache .ruff_cache *.egg-info
