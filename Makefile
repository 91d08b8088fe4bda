GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build run docs test lint clean content package

# Packages take their version from the latest vX.Y.Z tag (0.0.0-dev before the first).
PKG_VERSION ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//')
PKG_ARCHES ?= amd64 arm64
PKG_DIR ?= build/packages
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o build/fanotify.ext ./extension

# Builds, then shows this host's ENOSPC/EMFILE risk per limit and charged uid, worst first.
RUN_SQL := SELECT subsystem, name, uid, user_ns, used, limit_value, ROUND(utilization, 1) AS pct, \
	projected_need, risk, recommended FROM fanotify_limits WHERE scope != 'queue' \
	ORDER BY CASE risk WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END, utilization DESC
run: build
	./build/fanotify.ext query "$(RUN_SQL)"

# Rewrites the table reference in README.md from the table definitions.
docs:
	$(GO) run ./extension/tabledocs README.md

# Tests that create kernel objects must not run beside each other: -p 1.
test:
	$(GO) vet ./...
	$(GO) test -race -p 1 -count=1 ./...

lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf build

# Regenerates the osquery pack, Fleet YAML and checks from integration/content/queries.yml.
content:
	$(GO) run ./integration/content/gen integration/content

# .deb and .rpm of fanotify.ext for every PKG_ARCHES, into PKG_DIR.
package:
	mkdir -p $(PKG_DIR)
	set -e; for arch in $(PKG_ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o build/linux_$$arch/fanotify.ext ./extension; \
		for format in deb rpm; do \
			ARCH=$$arch BIN=build/linux_$$arch/fanotify.ext VERSION=$(or $(PKG_VERSION),0.0.0-dev) \
				$(NFPM) package -f integration/packaging/nfpm.yaml -p $$format -t $(PKG_DIR)/; \
		done; \
	done

# Fuzzers as package:FuzzName (go test -fuzz takes one fuzzer at a time). A
# failing input lands in the package's testdata/fuzz/FuzzName/: commit it, and
# every go test replays it as a regression case.
FUZZERS := \
	./extension/config:FuzzConfigParse \
	./tables:FuzzParseContext \
	./extension/sqlengine:FuzzContextRoundTrip \
	./fanotify/procfs:FuzzParseFdinfo \
	./fanotify/procfs:FuzzParseMountinfo \
	./fanotify/procfs:FuzzParseProcessFiles
FUZZTIME ?= 2m
# Long-running checks behind `make stress`.
STRESS := fuzz churn

.PHONY: fuzz fuzz-short stress churn

# Runs every fuzzer for FUZZTIME.
fuzz:
	@set -e; for f in $(FUZZERS); do \
		echo "fuzz $$f for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}"; \
	done

# The CI smoke run: every fuzzer for 100,000 inputs (2 to 16 seconds here). A
# count, not a duration: when a -fuzztime duration runs out on a loaded
# machine, go1.26's coordinator can fail a fuzzer that found nothing with
# "context deadline exceeded" (golang/go#75804, fixed in go1.27).
fuzz-short:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=100000x

# Scans every snapshot table 1000 times while processes holding inotify and
# fanotify fds are born and die (go test runs 100).
churn:
	FANOTIFY_CHURN_SCANS=1000 $(GO) test -race -count=1 -run '^TestChurn$$' -v ./tables

stress: $(STRESS)

.PHONY: bench

# Measures fanotify.ext against raw baselines on a synthetic busy host that it
# builds and removes (as root, about 4 minutes); writes BENCHMARKS.md. Too
# heavy for `make test` and CI. BENCHFLAGS=-strict fails on a missed goal.
bench: build
	$(GO) run ./integration/bench -ext build/fanotify.ext -out BENCHMARKS.md $(BENCHFLAGS)
