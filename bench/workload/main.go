// Command workload serves a GitHub-Actions-shaped workload-token issuer
// for bench/refresh.sh's exchange mode (internal/connector/oidc/oidctest):
// discovery, JWKS and /stats (JWKS requests so far) over HTTPS, and writes
// subject tokens, one per line, for the load generator.
//
//	workload -addr 127.0.0.1:15560 -cert tls.crt -key tls.key -tokens subject-tokens -n 16 -aud https://gatehouse.example/ci
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc/oidctest"
)

func main() {
	var (
		addr   = flag.String("addr", "127.0.0.1:15560", "listen address (HTTPS)")
		cert   = flag.String("cert", "", "serving certificate (PEM)")
		key    = flag.String("key", "", "serving key (PEM)")
		tokens = flag.String("tokens", "", "write subject tokens here, one per line")
		n      = flag.Int("n", 16, "how many subject tokens (one repository each)")
		aud    = flag.String("aud", "https://gatehouse.example/ci", "the tokens' aud")
		ttl    = flag.Duration("ttl", time.Hour, "the tokens' lifetime")
	)
	flag.Parse()
	w := oidctest.New()
	w.URL = "https://" + *addr
	var lines []string
	for i := range *n {
		lines = append(lines, w.Sign(w.GitHubClaimsFor(fmt.Sprintf("exampleorg/service-%d", i), "production", *aud, *ttl)))
	}
	if err := os.WriteFile(*tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
	srv := &http.Server{Addr: *addr, Handler: w.Handler(), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServeTLS(*cert, *key); err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}
