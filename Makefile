# cloudphone — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
DEVENV := $(GO) run ./infra/cmd/devenv --

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## run the whole platform on one port (private Postgres and Redis unless DATABASE_URL / REDIS_URL are set)
	@echo "building bin/cloudphone (the first build on a new machine takes a few minutes)..."
	@CGO_ENABLED=0 $(GO) build -trimpath -o bin/cloudphone ./assembly/cmd/cloudphone
	@exec bin/cloudphone

# The rehearsal (tests/rehearsal) runs last, alone: the Docker networks it
# creates make a browser running at the same time (the console's tests) drop
# its requests with ERR_NETWORK_CHANGED.
.PHONY: test
test: ## run every test on real Postgres, Redis (started privately unless DATABASE_URL / REDIS_URL are set) and Docker
	CGO_ENABLED=0 $(DEVENV) bash -c '$(GO) test -count=1 -timeout 12m $$($(GO) list ./... | grep -v /tests/rehearsal$$) && $(GO) test -count=1 -timeout 8m ./tests/rehearsal/'

.PHONY: test-race
test-race: ## every test with the race detector
	$(DEVENV) $(GO) test -count=1 -race -timeout 20m ./...

.PHONY: bench
bench: ## print every benchmark figure (start-up, outbox lag, limiter, edge, tokens, devices, billing, notification streams) with its command
	$(DEVENV) bash tests/bench/run.sh

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 60s)
	bash tests/fuzz.sh $${FUZZTIME:-60s}

.PHONY: manifests
manifests: ## render infra/knative, triggers/ and stack.yml from the function catalog
	$(GO) run ./infra/manifests/cmd/render

.PHONY: manifests-check
manifests-check: ## fail when the committed manifests differ from the catalog
	$(GO) run ./infra/manifests/cmd/render -check

.PHONY: build
build: ## build the platform, the bundle binary bin/function, the deployable broker and one binary per function in bin/fn/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/cloudphone ./assembly/cmd/cloudphone
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/function ./assembly/cmd/function
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/broker ./infra/cmd/broker
	@echo "building bin/fn/<function>, one binary per function (a few minutes)..."
	@mains=$$($(GO) run ./assembly/cmd/mains) && CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/fn/ $$mains

.PHONY: cli
cli: ## build the command line, bin/cpctl
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o bin/cpctl ./infra/cmd/cpctl

.PHONY: images
images: build ## build one image per function (its own binary), per OpenFaaS bundle and the broker's (FROM scratch, the binary only)
	@# Each build's context is the Dockerfile and the one binary it copies, not all of bin/.
	@for f in $$($(GO) run ./infra/manifests/cmd/render -list); do \
	  tar -c -C infra/image Dockerfile -C ../../bin/fn $$f | \
	  docker build -q --build-arg FUNCTION=$$f --build-arg BINARY=$$f -t cloudphone/$$f:latest - >/dev/null && echo cloudphone/$$f:latest; done
	@for b in $$($(GO) run ./infra/manifests/cmd/render -bundles); do \
	  tar -c -C infra/image Dockerfile -C ../../bin function | \
	  docker build -q -t cloudphone/$$b:latest - >/dev/null && echo cloudphone/$$b:latest; done
	@tar -c -C infra/image Dockerfile -C ../../bin broker | \
	  docker build -q --build-arg BINARY=broker -t cloudphone/cloudphone-broker:latest - >/dev/null && echo cloudphone/cloudphone-broker:latest

.PHONY: rehearse
rehearse: ## run the platform as separately deployed units on the local Docker engine (a container per stack.yml unit) on 127.0.0.1:8090
	@CGO_ENABLED=0 $(GO) build -trimpath -o bin/rehearse ./infra/cmd/rehearse
	$(GO) run ./infra/cmd/devenv -dir .data/rehearsal -- bin/rehearse up

.PHONY: test-rehearsal
test-rehearsal: ## only the journey through a rehearsal of its own (tests/rehearsal, part of make test): builds its images, needs the Docker engine
	CGO_ENABLED=0 $(DEVENV) $(GO) test -count=1 -v -timeout 10m ./tests/rehearsal/

.PHONY: rehearse-down
rehearse-down: ## remove what a rehearsal left on the Docker engine (its containers, phones and networks, nothing else)
	@CGO_ENABLED=0 $(GO) build -trimpath -o bin/rehearse ./infra/cmd/rehearse
	bin/rehearse down

.PHONY: phone-standin
phone-standin: ## build the phone STAND-IN image cloudphone/phone-standin:latest (not Android; for tests and local runs)
	@ctx=$$(mktemp -d) && trap 'rm -rf "$$ctx"' EXIT && \
	  CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags='-s -w' -o "$$ctx/phone-standin" ./infra/phone-standin && \
	  cp infra/phone-standin/Dockerfile "$$ctx/" && mkdir "$$ctx/data" "$$ctx/sdcard" && \
	  docker build -q -t cloudphone/phone-standin:latest "$$ctx"

.PHONY: deploy-knative
deploy-knative: ## apply the Knative Services, Broker, Triggers and PingSources (needs kubectl and a cluster)
	kubectl apply -f infra/knative -f triggers

.PHONY: deploy-openfaas
deploy-openfaas: ## deploy the per-context bundles with faas-cli (needs an OpenFaaS gateway)
	faas-cli deploy -f stack.yml

.PHONY: vet
vet: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
