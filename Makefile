GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build test lint clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o build/fanotify.ext ./extension

# Tests that create kernel objects must not run beside each other: -p 1.
test:
	$(GO) vet ./...
	$(GO) test -race -p 1 -count=1 ./...

lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

clean:
	rm -rf build
