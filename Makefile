# vouch: make demo (build a real image and scan it), make test (everything).
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/vouch-dev/vouch/internal/cli.version=$(VERSION)
FIXTURES := .cache/fixtures

.PHONY: all build deps fixtures test demo demo-fleet lint fuzz bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/vouch ./cmd/vouch

deps:
	@./scripts/deps.sh

fixtures: deps
	@./scripts/fetch-debs.sh
	@./scripts/fetch-prev-kernel.sh
	@./scripts/build-fixtures.sh
	@./scripts/build-cloud-fixture.sh
	@./scripts/build-kernel-fixture.sh

# Every test, with the real fixtures (Debian images, OVMF boots). Cold: builds the
# fixtures first (a few minutes); warm: reuses .cache/.
test: fixtures build
	$(GO) vet ./...
	VOUCH_FIXTURES=$(CURDIR)/$(FIXTURES) $(GO) test -timeout 40m -count=1 ./...

demo: deps build
	@./scripts/fetch-debs.sh
	@./scripts/build-fixtures.sh debian.raw
	@echo; echo "== vouch inspect $(FIXTURES)/debian.raw"; ./bin/vouch inspect $(FIXTURES)/debian.raw
	@echo; echo "== vouch scan $(FIXTURES)/debian.raw"; ./bin/vouch scan --fail-on none $(FIXTURES)/debian.raw
	@echo; echo "== a simulated fleet in vouch serve (scripts/demo-fleet.sh)"; ./scripts/demo-fleet.sh

# Only the fleet part of the demo: vouch serve with a simulated fleet; the
# dashboard stays up until Enter.
demo-fleet: deps build
	@./scripts/build-fixtures.sh debian.raw
	@./scripts/demo-fleet.sh

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Run each fuzzer for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./internal/...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./bench/inspect.sh

clean:
	rm -rf bin
