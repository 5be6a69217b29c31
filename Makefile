# nmpi-infra developer commands. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

include images/images.env
# Every name of images/images.env reaches the tools (molecule scenarios read NMPI_IMAGE_*).
$(foreach v,$(filter NMPI_%,$(.VARIABLES)),$(eval export $(v)))

VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export SSL_CERT_FILE ?= /etc/ssl/certs/ca-certificates.crt
# The local OpenStack's clouds.yaml (lab-castor, lab-jusuf, lab-admin), for openstack scenarios.
export OS_CLIENT_CONFIG_FILE ?= $(CURDIR)/.cache/devstack/clouds.yaml

PYTEST_ARGS ?=

.PHONY: help setup images job-manager lint test test-fast test-lab chaos logs bench-failover bench-monitoring bench-emulators bench-job-manager bench-backup molecule bench bench-lab bench-deploy lab lab-info lab-down devstack devstack-status devstack-down devstack-clean clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## Install the locked toolchain (.venv) and start a Docker engine
	@scripts/setup.sh

images: setup ## Build the base image and every images/*/Dockerfile (cached)
	@images/build.sh

job-manager: setup ## Build the Job Manager web app into platform/job_manager/dist (npm ci from its lock file; cached)
	@scripts/build-job-manager

lint: ## ruff, mypy, yamllint, ansible-lint (production profile), shellcheck
	@scripts/setup.sh --no-docker
	scripts/shell-scripts | xargs --no-run-if-empty shellcheck
	ruff check .
	ruff format --check .
	mypy
	yamllint --strict .
	ansible-lint

test-fast: lint ## Lint + unit tests: no Docker needed (the inner loop)
	pytest -m "not slow" $(PYTEST_ARGS)

# Two pytest processes side by side: the local OpenStack's suites (mark "lab") and the rest.
test: images job-manager lint ## Everything: lint, unit tests, every molecule scenario, the lab suites, site.yml on the lab
	scripts/run-tests $(PYTEST_ARGS)

molecule: images ## Run one role's molecule scenario: make molecule ROLE=docker_engine [SCENARIO=default] [CMD=test]
	@test -n "$(ROLE)" || { echo "make molecule: set ROLE=<role>, e.g. ROLE=docker_engine" >&2; exit 2; }
	cd roles/$(ROLE) && molecule $(or $(CMD),test) -s $(or $(SCENARIO),default)

bench: setup ## Benchmarks that print figures (job queue: submissions/s, list latency, claims/s)
	python platform/job_queue/bench/bench.py $(BENCH_ARGS)

DEVSTACK := $(VENV)/bin/nmpi-devstack
LAB_REGIONS := castor,jusuf,witness

lab: images job-manager ## The main job on the local lab: OpenStack (castor, jusuf, witness), site.yml, how to reach it
	$(DEVSTACK) up --regions $(LAB_REGIONS)
	ansible-playbook site.yml -i inventories/lab $(ANSIBLE_ARGS)
	python -m nmpi_lab.hostdns on || test $$? -eq 3
	python -m nmpi_lab.info

INVENTORY ?= inventories/lab
logs: setup ## Central logs of every host: make logs SINCE=10m [UNTIL=] [HOST=] [SERVICE=job-queue] [LEVEL=error] [REQUEST_ID=] [GREP=] [LIMIT=1000] [INVENTORY=]
	scripts/nmpi-logs -i $(INVENTORY) --since $(or $(SINCE),10m) $(if $(UNTIL),--until "$(UNTIL)") \
	  $(foreach h,$(HOST),--host $(h)) $(foreach s,$(SERVICE),--service $(s)) $(if $(LEVEL),--level $(LEVEL)) \
	  $(if $(REQUEST_ID),--request-id $(REQUEST_ID)) $(if $(GREP),--grep '$(GREP)') $(if $(LIMIT),--limit $(LIMIT))

lab-info: ## How to reach the platform `make lab` deployed: URL, CA file, an nmpi client example
	python -m nmpi_lab.info

lab-down: setup ## Remove what site.yml created on the lab (playbooks/destroy.yml), then stop the lab
	python -m nmpi_lab.hostdns off
	$(DEVSTACK) up --regions $(LAB_REGIONS)
	ansible-playbook playbooks/destroy.yml -i inventories/lab -e nmpi_destroy_confirm=lab
	$(DEVSTACK) down

test-lab: images job-manager ## Acceptance of site.yml on the lab: deploys (or converges), checks, re-runs, --check
	pytest tests/lab $(PYTEST_ARGS)

chaos: setup ## Fault scenarios on the deployed lab (make lab first), with users at work: a table of what they saw [SCENARIO=name]
	pytest tests/chaos $(if $(SCENARIO),-k "$(SCENARIO)") $(PYTEST_ARGS)

bench-failover: setup ## Leader-site loss 10 times on the deployed lab: outage distribution and where the time goes [BENCH_ARGS=--runs N]
	python -m nmpi_lab.chaos.bench_failover $(BENCH_ARGS)

bench-monitoring: setup ## Memory of the monitoring stack at the witness on the deployed lab (make lab first) [BENCH_ARGS=--samples N]
	python -m nmpi_lab.bench_monitoring $(BENCH_ARGS)

bench-emulators: setup ## The emulated hardware sites on the deployed lab: submission to finished (median), jobs per minute [BENCH_ARGS=--jobs N --burst M]
	python -m nmpi_lab.bench_emulators $(BENCH_ARGS)

bench-job-manager: setup ## The Job Manager on the deployed lab: a page of 100 jobs out of 100,000 in Chromium (median), the first page's gzipped weight [BENCH_ARGS=--runs N]
	python -m nmpi_lab.bench_job_manager $(BENCH_ARGS)

bench-backup: setup ## Backup and restore of a 100,000-job database on the deployed lab: times and repository size [BENCH_ARGS=--jobs N]
	python -m nmpi_lab.bench_backup $(BENCH_ARGS)

bench-deploy: images job-manager ## Deploy figures on the lab: site.yml cold, end to end (lab stopped), re-run (destroys the lab's platform)
	python -m nmpi_lab.bench_deploy $(BENCH_ARGS)


devstack: images ## Start the local two-region OpenStack (lab/: nmpi-devstack; reuses a running one)
	$(DEVSTACK) up

devstack-status: ## Processes and health of the local OpenStack
	$(DEVSTACK) status

devstack-down: ## Stop the local OpenStack (its instances and state stay)
	$(DEVSTACK) down

devstack-clean: ## Stop the local OpenStack and remove its state and instances (the venv stays)
	-python -m nmpi_lab.hostdns off
	$(DEVSTACK) clean --yes

bench-lab: images ## Local OpenStack figures: cold up, restart, memory with 6 instances (wipes the lab)
	python -m nmpi_lab.bench_lab $(BENCH_ARGS)

clean: ## Remove the Python environment and caches (images stay; docker rmi them by hand)
	-test ! -x $(VENV)/bin/python || $(VENV)/bin/python -m nmpi_lab.hostdns off
	-test ! -x $(DEVSTACK) || $(DEVSTACK) clean --yes
	rm -rf .venv .cache .pytest_cache .mypy_cache .ruff_cache
