package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

// child is the gatehouse command line run as its own process (the test
// binary's main), in its own working folder.
type child struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

func startMain(t *testing.T, dir string, env []string, argv ...string) *child {
	t.Helper()
	raw, _ := json.Marshal(argv)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), env...), "GATEHOUSE_TEST_MAIN_ARGS="+string(raw))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, out: &out, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

// waitReady waits for /healthz/ready on the child's telemetry address.
func (c *child) waitReady(t *testing.T, telemetry string) {
	t.Helper()
	pollReady(t, telemetry, func() string {
		select {
		case err := <-c.done:
			c.done <- err
			return fmt.Sprintf("exited (%v):\n%s", err, c.out)
		default:
			return ""
		}
	})
}

// stop sends SIGTERM and expects a clean exit.
func (c *child) stop(t *testing.T) {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.out)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", c.out)
	}
}

// TestDexExampleConfigs starts gatehouse on Dex v2.45.1's own example
// configs (testdata/dex, quoted from Dex's repository) and on the seed
// scenario's config as Dex's Helm chart writes it, each with gatehouse's
// --config and with Dex's command line exactly as Dex's chart runs Dex's
// image (`dex serve --web-http-addr ... --telemetry-addr ... FILE`, the
// file rendered as the image's entrypoint renders it), and checks that the
// issuer serves its discovery document.
func TestDexExampleConfigs(t *testing.T) {
	abs := func(name string) string {
		p, err := filepath.Abs(filepath.Join("testdata", "dex", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		file   string
		issuer string
		env    func(dir string) []string
		// rendered: the file is a template for Dex's image.
		rendered bool
	}{
		{file: "config.yaml.dist", issuer: "http://127.0.0.1:5556/dex"},
		{file: "config-dev.yaml", issuer: "http://127.0.0.1:5556/dex"},
		{file: "config.docker.yaml", issuer: "http://127.0.0.1:5556/dex", rendered: true, env: func(dir string) []string {
			return []string{"DEX_STORAGE_SQLITE3_CONFIG_FILE=" + filepath.Join(dir, "dex.db")}
		}},
		{file: "seed-chart-config.yaml", issuer: "https://login.example.com/dex", env: func(dir string) []string {
			return []string{"DATA_DIR=" + dir, "GITHUB_CLIENT_ID=Iv1.0123456789abcdef", "GITHUB_CLIENT_SECRET=0123456789abcdef0123456789abcdef01234567", "KUBERNETES_CLIENT_SECRET=kube-secret"}
		}},
	} {
		for _, form := range []string{"--config", "dex serve (Dex's chart)", "gatehouse serve FILE"} {
			t.Run(tc.file+"/"+form, func(t *testing.T) {
				dir := t.TempDir()
				// Dex's examples name paths relative to Dex's repository.
				if err := os.Mkdir(filepath.Join(dir, "examples"), 0o755); err != nil {
					t.Fatal(err)
				}
				var env []string
				if tc.env != nil {
					env = tc.env(dir)
				}
				file := abs(tc.file)
				web, tel := freeAddr(t), freeAddr(t)
				var argv []string
				switch form {
				case "--config":
					if tc.rendered {
						// As Dex's image renders it, with the same environment.
						for _, kv := range env {
							k, v, _ := strings.Cut(kv, "=")
							t.Setenv(k, v)
						}
						data, err := os.ReadFile(file)
						if err != nil {
							t.Fatal(err)
						}
						out, err := config.RenderTemplate(file, data)
						if err != nil {
							t.Fatal(err)
						}
						file = filepath.Join(dir, "config.yaml")
						if err := os.WriteFile(file, out, 0o600); err != nil {
							t.Fatal(err)
						}
					}
					argv = []string{"gatehouse", "serve", "--config", file, "--web-http-addr", web, "--telemetry-addr", tel}
				case "dex serve (Dex's chart)":
					// The image's entrypoint gets the chart's args.
					argv = []string{"/gatehouse", "dex", "serve", "--web-http-addr", web, "--telemetry-addr", tel, file}
				default:
					if tc.rendered {
						t.Skip("a template is rendered by Dex's image, not by dex serve")
					}
					argv = []string{"gatehouse", "serve", "--web-http-addr", web, "--telemetry-addr", tel, file}
				}
				c := startMain(t, dir, env, argv...)
				c.waitReady(t, tel)
				path := strings.TrimPrefix(tc.issuer, "https://login.example.com")
				path = strings.TrimPrefix(path, "http://127.0.0.1:5556")
				resp, err := http.Get("http://" + web + path + "/.well-known/openid-configuration")
				if err != nil {
					t.Fatal(err)
				}
				var doc struct{ Issuer string }
				err = json.NewDecoder(resp.Body).Decode(&doc)
				resp.Body.Close()
				if err != nil || doc.Issuer != tc.issuer {
					t.Fatalf("discovery: issuer %q (%v), want %q", doc.Issuer, err, tc.issuer)
				}
				c.stop(t)
			})
		}
	}
}

// TestServeCommandLine checks dex serve's argument rules and the
// precedence of its flags over the file.
func TestServeCommandLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(file, []byte("issuer: http://127.0.0.1:5556/dex\nstorage: {type: memory}\nweb: {http: \"127.0.0.1:1\"}\ntelemetry: {http: \"127.0.0.1:2\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noWeb := filepath.Join(dir, "noweb.yaml")
	if err := os.WriteFile(noWeb, []byte("issuer: http://127.0.0.1:5556/dex\nstorage: {type: memory}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"serve"}, "give the config file (gatehouse serve config.yaml"},
		{"two files", []string{"serve", "--config", file, noWeb}, "the config file is given twice"},
		{"grpc", []string{"serve", "--grpc-addr", "0.0.0.0:5557", file}, "--grpc-addr 0.0.0.0:5557: gatehouse has no gRPC API"},
		{"dev and file", []string{"serve", "--dev", file}, "give either a config file or --dev"},
		{"dev and flag", []string{"serve", "--dev", "--web-http-addr", ":1"}, "--web-http-addr cannot be combined with --dev"},
		{"no address anywhere", []string{"serve", noWeb}, "--web-https-addr, --web-http-addr"},
		{"bad flag value named as the flag", []string{"serve", "--web-http-addr", "nonsense", noWeb}, "--web-http-addr (web.http): \"nonsense\" is not a listen address"},
		{"extra argument", []string{"serve", file, file}, "accepts at most 1 arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCommand()
			root.SetArgs(tc.args)
			root.SetOut(&bytes.Buffer{})
			root.SetErr(&bytes.Buffer{})
			err := root.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to say %q", err, tc.want)
			}
		})
	}

	// A flag that is given wins over the file, as in Dex.
	web, tel := freeAddr(t), freeAddr(t)
	c := startMain(t, dir, nil, "gatehouse", "serve", "--web-http-addr", web, "--telemetry-addr", tel, file)
	c.waitReady(t, tel)
	resp, err := http.Get("http://" + web + "/dex/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("web not on --web-http-addr: %v", err)
	}
	resp.Body.Close()
	c.stop(t)
	if !strings.Contains(c.out.String(), fmt.Sprintf(`"address":%q`, web)) {
		t.Errorf("log does not show the flag's address:\n%s", c.out)
	}
}

func TestDexInvocation(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		want []string
		dex  bool
	}{
		{[]string{"/gatehouse", "serve", "c.yaml"}, []string{"serve", "c.yaml"}, false},
		{[]string{"/gatehouse", "dex", "serve", "c.yaml"}, []string{"serve", "c.yaml"}, true},
		{[]string{"/gatehouse", "/usr/local/bin/dex", "serve", "c.yaml"}, []string{"serve", "c.yaml"}, true},
		{[]string{"/usr/local/bin/dex", "serve", "c.yaml"}, []string{"serve", "c.yaml"}, true},
		{[]string{"/gatehouse", "version"}, []string{"version"}, false},
		{[]string{"/gatehouse"}, []string{}, false},
	} {
		args, dex := dexInvocation(tc.argv)
		if dex != tc.dex || strings.Join(args, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v: %v %v, want %v %v", tc.argv, args, dex, tc.want, tc.dex)
		}
	}
}
