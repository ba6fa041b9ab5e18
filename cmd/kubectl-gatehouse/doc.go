// Command kubectl-gatehouse is the kubectl credential plugin for
// gatehouse. Installed (or linked) as kubectl-oidc_login it answers
// kubelogin's get-token, setup and clean with kubelogin's flags.
//
// kubectl runs it for every command, so start-up matters (see
// docs/benchmarks.md, "kubectl plugin"). The package builds two ways:
//
//   - Plain (no build tag; what `go install`, `go build ./...`, `go vet`
//     and the tests build): the complete plugin in one executable. It links
//     the HTTPS client and the OIDC libraries, whose package initialisation
//     Go runs at every start, so a warm get-token costs about twice a
//     hello-world.
//   - With the embedengine tag (what `make build`, tools/release and the
//     Krew archives ship): the small front end (internal/front), which
//     serves get-token's warm path by itself, with the plain build embedded
//     as engine.bin and started for everything else.
//
// engine.bin is generated and gitignored: build the plain command into it
// first, then the tagged one (or supply it with go build -overlay, as
// tools/release and the tests do):
//
//	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o cmd/kubectl-gatehouse/engine.bin ./cmd/kubectl-gatehouse
//	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -tags embedengine -o bin/kubectl-gatehouse ./cmd/kubectl-gatehouse
//
// One package with a build tag, rather than two commands, keeps `go
// install .../cmd/kubectl-gatehouse@latest` working without the generated
// file (it gets the plain build), and makes the engine the very same
// program as the plain build.
package main
