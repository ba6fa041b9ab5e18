# gatehouse: the two commands a newcomer needs are `make dev` and `make test`.
GO ?= go
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
# PostgreSQL used by the storage and audit tests; CI and the dev machines
# run one on 127.0.0.1:5432 (user postgres, trust auth, database test).
GATEHOUSE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export GATEHOUSE_TEST_POSTGRES

.PHONY: dev build test lint unit e2e bench clean

## dev: run the issuer on embedded defaults (SQLite, local user, self-signed TLS)
dev:
	$(GO) run ./cmd/gatehouse serve --dev

## build: build the binaries into ./bin (static: cgo adds ~0.7 ms to every plugin start); kubectl-gatehouse is one file, the fast front end with the plain plugin embedded (generated cmd/kubectl-gatehouse/engine.bin; docs/kubectl-plugin.md)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/gatehouse ./cmd/gatehouse
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/gatehouse-proxy ./cmd/gatehouse-proxy
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o cmd/kubectl-gatehouse/engine.bin ./cmd/kubectl-gatehouse
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -tags embedengine -o bin/kubectl-gatehouse ./cmd/kubectl-gatehouse
	ln -sf kubectl-gatehouse bin/kubectl-oidc_login

## test: everything CI runs: formatting, vet, staticcheck, unit and integration tests with -race, the end-to-end suite
test: lint unit e2e

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@# test/e2e imports the main module through a replace; -mod=mod lets its
	@# go.sum follow dependencies the main module adds without a manual tidy.
	@if [ -f test/e2e/go.mod ]; then cd test/e2e && $(GO) vet -mod=mod ./... && $(GO) run $(STATICCHECK) ./...; fi

unit:
	$(GO) test -race -count=1 ./...

e2e:
	@if [ -f test/e2e/go.mod ]; then cd test/e2e && $(GO) test -mod=mod -race -count=1 -timeout 60m ./...; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin

.PHONY: image release
comma := ,
VERSION ?=
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)

## image: build the OCI image without a Docker daemon: bin/image (OCI layout) and, for one IMAGE_ARCH, bin/gatehouse-image.tar
image:
	$(GO) run ./tools/image -arch $(IMAGE_ARCH) -layout bin/image \
		$(if $(findstring $(comma),$(IMAGE_ARCH)),,-tarball bin/gatehouse-image.tar) \
		$(if $(VERSION),-version $(VERSION))

## release: cross-compile kubectl-gatehouse (one file with its engine embedded; linux/darwin/windows) and gatehouse (linux/darwin) on amd64/arm64 into bin/release (archives, SHA256SUMS, filled Krew manifest)
release:
	$(GO) run ./tools/release -out bin/release $(if $(VERSION),-version $(VERSION))
