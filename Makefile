# Ferry — make targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: nocobase test-nocobase helm chart argocd-cm argocd-fixtures demo-cli help venv system-packages cluster-binaries node-binaries s3-binaries argocd-binaries lint format test test-unit test-db test-e2e test-node check demo bench clean cluster cluster-down

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with Ferry and the dev tools

system-packages: ## install the Debian packages the tests need (PostgreSQL, MariaDB, git, runc, buildah, ...)
	bash hack/ensure-system-packages.sh

node-binaries: cluster-binaries ## build kubelet, containerd, kube-proxy, kube-scheduler, CoreDNS once (cached)
	bash hack/node/build.sh

s3-binaries: ## build the SeaweedFS S3 test server once (cached in ~/.cache/ferry)
	bash hack/s3/build.sh

argocd-binaries: ## build Argo CD (controller, repo server, API server, CLI) and kustomize once (cached in ~/.cache/ferry)
	bash hack/argocd/build.sh

cluster-binaries: ## build kube-apiserver, etcd, controller-manager, kubectl once (cached in ~/.cache/ferry)
	bash hack/cluster/build.sh

nocobase: ## install the pinned NocoBase once (npm registry only; cached in ~/.cache/ferry)
	bash hack/nocobase/install.sh

test-nocobase: $(STAMP) system-packages nocobase ## Ferry against real NocoBase (PostgreSQL; the release cycle and restore on MariaDB and SQLite too)
	$(BIN)/pytest tests/nocobase -q

helm: ## build the pinned helm once (cached in ~/.cache/ferry)
	bash hack/helm/build.sh

chart: $(STAMP) helm ## lint the Helm chart, validate its manifests, check manifests/install is current
	bash hack/check-chart.sh

.PHONY: base-image image
base-image: ## build the Debian base image once (debootstrap + buildah; cached in ~/.cache/ferry)
	bash hack/image/base.sh

image: ## build Ferry's image from the Dockerfile with buildah; prints "<ref> <OCI archive>"
	bash hack/image/build.sh

lint: $(STAMP) helm ## ruff, import layers, mypy --strict, generated docs and CRD digests, the Helm chart
	$(BIN)/ruff check controller tests bench hack
	$(BIN)/ruff format --check controller tests bench hack
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python hack/gen_crd_reference.py --check
	$(BIN)/python hack/gen_crd_digests.py --check
	bash hack/check-chart.sh

docs: $(STAMP) ## regenerate docs/reference/crds.md from crds/
	$(BIN)/python hack/gen_crd_reference.py

format: $(STAMP) ## format the code
	$(BIN)/ruff format controller tests bench hack
	$(BIN)/ruff check --fix controller tests bench hack

test-unit: $(STAMP) helm ## fast tests of pure logic
	$(BIN)/pytest tests/unit -q

test-db: $(STAMP) system-packages s3-binaries ## tests against real SQLite, PostgreSQL and MariaDB
	$(BIN)/pytest tests/db -q

test-e2e: $(STAMP) system-packages cluster-binaries argocd-binaries helm ## the operator against a real kube-apiserver and etcd
	$(BIN)/pytest tests/e2e -q

test-node: $(STAMP) system-packages node-binaries base-image helm nocobase ## the operator as a pod from its chart, on the real node (real NocoBase as a Deployment too)
	$(BIN)/pytest tests/node -q

test: $(STAMP) system-packages cluster-binaries node-binaries base-image s3-binaries argocd-binaries helm nocobase ## set up everything and run every test tier (three pytest processes side by side)
	$(BIN)/python hack/run_tests.py

check: lint test ## lint, types and every test

demo: $(STAMP) system-packages node-binaries base-image helm ## the whole loop on a local cluster with a real node: the operator as a pod (chart), an application quiesced and resumed, Git, approval, rollback
	$(BIN)/python hack/demo_cluster.py

demo-cli: $(STAMP) ## the command line alone: dev → pre-release → production on SQLite files
	$(BIN)/python hack/demo.py

bench: $(STAMP) system-packages cluster-binaries ## every benchmark: migration, backup vs pg_dump, restore drill, operator latency
	$(BIN)/python bench/migration_bench.py
	$(BIN)/python bench/backup_bench.py
	$(BIN)/python bench/drill_bench.py
	$(BIN)/python bench/operator_bench.py

cluster: ## build (once, cached) and start the local cluster with its real node; prints KUBECONFIG
	bash hack/node/build.sh
	bash hack/cluster/up.sh --node

cluster-down: ## stop the local cluster and put the host back as it was
	bash hack/cluster/down.sh

argocd-cm: $(STAMP) ## regenerate argocd/argocd-cm.yaml from the Lua files in argocd/
	$(BIN)/python -m tests.unit.test_argocd_health

argocd-fixtures: $(STAMP) cluster-binaries ## re-record the Argo CD health fixtures from a real operator
	FERRY_RECORD_FIXTURES=1 $(BIN)/pytest tests/e2e/test_status_fixtures.py -q

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis demo-out
