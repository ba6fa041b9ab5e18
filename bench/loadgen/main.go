// Command loadgen measures an OpenID Connect issuer under load: the
// refresh grant (each worker keeps its own rotating refresh token chain,
// as a kubectl per person would), the token exchange grant (each worker
// exchanges its own CI job's subject token, as a pipeline would), or plain
// GETs of discovery and JWKS. It
// works against gatehouse and Dex alike, since both take the same
// Dex-format config, and prints requests/s, p50/p99 latency and errors.
//
//	loadgen -issuer https://127.0.0.1:5556/dex -ca ca.crt -client kubernetes -secret S \
//	    -username admin@example.com -password P -workers 16 -duration 30s -mode refresh
//
// With one user for all chains, Dex keeps only the last chain (it holds one
// refresh token per user and client); -username 'bench%d@example.com' gives
// each worker its own user, as bench/refresh.sh does.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	var (
		issuer   = flag.String("issuer", "https://127.0.0.1:5556/dex", "issuer URL")
		caFile   = flag.String("ca", "", "CA file of the issuer's certificate")
		clientID = flag.String("client", "kubernetes", "client id")
		secret   = flag.String("secret", "", "client secret")
		username = flag.String("username", "admin@example.com", "user for the password grant that starts each chain; a %d in it is replaced by the worker's number (0..workers-1), one user per chain")
		password = flag.String("password", "", "password")
		workers  = flag.Int("workers", 16, "concurrent workers")
		duration = flag.Duration("duration", 20*time.Second, "how long to run (bounded)")
		mode     = flag.String("mode", "refresh", "refresh | exchange (token exchange of -subject-tokens through -connector) | discovery | jwks | password (each request a password grant, no refresh token: a login through the password connector)")
		subjects = flag.String("subject-tokens", "", "exchange mode: file of subject tokens, one per line; worker i uses line i modulo their number")
		connID   = flag.String("connector", "github-actions", "exchange mode: the connector_id that verifies the subject tokens")
		label    = flag.String("label", "", "name printed with the result")
		started  = flag.String("started", "", "create this file when the timed run (warm-up included) begins, e.g. to start a profile")
		warmup   = flag.Duration("warmup", 2*time.Second, "run this long before recording (connection set-up, server pools and caches); not counted")
		users    = flag.Int("users", 0, "password mode: rotate each worker through this many users (the %d in -username runs over 0..users-1), so per-user login limits do not cap the run; 0: one user per worker")
		xff      = flag.Bool("xff", false, "send each request with its own X-Forwarded-For address (10.x.y.z), as users behind a proxy; for servers that trust 127.0.0.1 as that proxy (web.clientRemoteIP), so that per-address login limits do not cap a password-mode run")
	)
	flag.Parse()
	if *duration > 5*time.Minute {
		fmt.Fprintln(os.Stderr, "loadgen: -duration is capped at 5m")
		*duration = 5 * time.Minute
	}
	client, err := httpClient(*caFile, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	tokenURL := strings.TrimSuffix(*issuer, "/") + "/token"

	var starts []string
	if *mode == "refresh" {
		for i := 0; i < *workers; i++ {
			// gatehouse rate-limits password attempts per user (10 a
			// minute): wait as told on 429, up to two minutes in all.
			var tok string
			var err error
			for deadline := time.Now().Add(2 * time.Minute); ; {
				tok, err = grant(client, tokenURL, *clientID, *secret, url.Values{
					"grant_type": {"password"}, "username": {userFor(*username, i)}, "password": {*password},
					"scope": {"openid email profile groups offline_access"},
				}, "")
				var rl *rateLimited
				if !errors.As(err, &rl) || time.Now().Add(rl.wait).After(deadline) {
					break
				}
				fmt.Fprintf(os.Stderr, "loadgen: chain %d/%d: rate-limited, retrying in %s\n", i+1, *workers, rl.wait)
				time.Sleep(rl.wait)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: starting a refresh chain with the password grant:", err)
				os.Exit(1)
			}
			starts = append(starts, tok)
		}
	}

	var subjectTokens []string
	if *mode == "exchange" {
		data, err := os.ReadFile(*subjects)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen: exchange mode needs -subject-tokens:", err)
			os.Exit(1)
		}
		subjectTokens = strings.Fields(string(data))
		if len(subjectTokens) == 0 {
			fmt.Fprintln(os.Stderr, "loadgen: no subject tokens in", *subjects)
			os.Exit(1)
		}
	}

	if *warmup < 0 || *warmup >= *duration {
		*warmup = 0
	}
	if *started != "" {
		if err := os.WriteFile(*started, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      atomic.Int64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	begin := time.Now()
	measureFrom := begin.Add(*warmup)
	// The load generator's own CPU over the measured window: it shares the
	// machine with the server.
	cpuStart := make(chan time.Duration, 1)
	time.AfterFunc(*warmup, func() { cpuStart <- cpuTime() })
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var local []time.Duration
			refresh, n, logins := "", 0, 0
			if starts != nil {
				refresh = starts[w]
			}
			for ctx.Err() == nil {
				t0 := time.Now()
				var err error
				switch *mode {
				case "refresh":
					var next string
					next, err = grant(client, tokenURL, *clientID, *secret, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, "")
					if err == nil {
						refresh = next
					}
				case "password":
					from := ""
					if *xff {
						n++
						from = fmt.Sprintf("10.%d.%d.%d", w%256, (n>>8)%256, n%256)
					}
					user := w
					if *users > 0 {
						user = (w + *workers*logins) % *users
					}
					logins++
					_, err = grant(client, tokenURL, *clientID, *secret, url.Values{
						"grant_type": {"password"}, "username": {userFor(*username, user)}, "password": {*password},
						"scope": {"openid email profile groups"},
					}, from)
				case "exchange":
					err = exchange(client, tokenURL, *clientID, *secret, url.Values{
						"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "connector_id": {*connID},
						"subject_token": {subjectTokens[w%len(subjectTokens)]}, "subject_token_type": {"urn:ietf:params:oauth:token-type:id_token"},
						"requested_token_type": {"urn:ietf:params:oauth:token-type:id_token"}, "scope": {"openid groups profile"},
					})
				case "discovery":
					err = get(client, strings.TrimSuffix(*issuer, "/")+"/.well-known/openid-configuration")
				case "jwks":
					err = get(client, strings.TrimSuffix(*issuer, "/")+"/keys")
				default:
					err = fmt.Errorf("unknown mode %q", *mode)
				}
				if ctx.Err() != nil {
					break
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					if *mode == "refresh" {
						return // the chain is broken: stop this worker
					}
					continue
				}
				if t0.After(measureFrom) {
					local = append(local, time.Since(t0))
				}
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(measureFrom)
	clientCPU := cpuTime() - <-cpuStart
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(float64(len(latencies))*p))]
	}
	out := map[string]any{
		"label": *label, "mode": *mode, "workers": *workers, "seconds": elapsed.Seconds(), "warmup_s": warmup.Seconds(),
		"requests": len(latencies), "rps": float64(len(latencies)) / elapsed.Seconds(),
		"p50_ms": ms(pct(0.50)), "p90_ms": ms(pct(0.90)), "p99_ms": ms(pct(0.99)), "max_ms": ms(pct(1)),
		"errors": errs.Load(), "client_cpu_s": clientCPU.Seconds(),
	}
	if v := firstErr.Load(); v != nil {
		out["first_error"] = v
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// userFor returns the login of worker i: pattern with %d replaced by i.
// Dex keeps one refresh token per user and client (a new login revokes the
// previous one, dexidp/dex#981), so against Dex each chain needs its own user.
func userFor(pattern string, i int) string {
	if strings.Contains(pattern, "%d") {
		return strings.ReplaceAll(pattern, "%d", strconv.Itoa(i))
	}
	return pattern
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func httpClient(caFile string, workers int) (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg, MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2,
	}}, nil
}

// grant posts to the token endpoint and returns the new refresh token.
// forwardedFor, when set, is sent as X-Forwarded-For.
func grant(c *http.Client, tokenURL, id, secret string, form url.Values, forwardedFor string) (string, error) {
	resp, body, err := post(c, tokenURL, id, secret, form, forwardedFor)
	if err != nil {
		return "", err
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		wait := time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n > 0 {
			wait = time.Duration(n) * time.Second
		} else if m := retryAfterText.FindSubmatch(body); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			wait = time.Duration(max(n, 1)) * time.Second
		}
		return "", &rateLimited{wait: wait, body: string(body)}
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body)
	}
	var tr struct {
		RefreshToken string `json:"refresh_token"`
		IDToken      string `json:"id_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", err
	}
	wantRefresh := form.Get("grant_type") == "refresh_token" || strings.Contains(form.Get("scope"), "offline_access")
	if tr.IDToken == "" || (wantRefresh && tr.RefreshToken == "") {
		return "", fmt.Errorf("token response lacks a refresh or ID token: %s", body)
	}
	return tr.RefreshToken, nil
}

// exchange posts a token exchange request and checks that a token came
// back, and no refresh token.
func exchange(c *http.Client, tokenURL, id, secret string, form url.Values) error {
	resp, body, err := post(c, tokenURL, id, secret, form, "")
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token endpoint: %d %s", resp.StatusCode, body)
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return err
	}
	if tr.AccessToken == "" || tr.RefreshToken != "" {
		return fmt.Errorf("exchange answer without a token, or with a refresh token: %s", body)
	}
	return nil
}

// post sends form to the token endpoint as the client (HTTP Basic) and
// returns the response (body already read and closed) and its body.
// forwardedFor, when set, is sent as X-Forwarded-For.
func post(c *http.Client, tokenURL, id, secret string, form url.Values, forwardedFor string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// rateLimited is a 429 from the token endpoint, with the wait it asks for.
type rateLimited struct {
	wait time.Duration
	body string
}

func (e *rateLimited) Error() string { return "token endpoint: 429 " + e.body }

var retryAfterText = regexp.MustCompile(`retry after (\d+) second`)

func get(c *http.Client, u string) error {
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d", u, resp.StatusCode)
	}
	return nil
}
