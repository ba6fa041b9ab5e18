package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOverrides: Dex's serve flags replace the file's values when given,
// complete a file without a web section, and errors name the flag.
func TestOverrides(t *testing.T) {
	withWeb := writeFile(t, "c.yaml", "issuer: https://login.example.com/dex\nstorage: {type: memory}\nweb: {http: \"0.0.0.0:5556\"}\ntelemetry: {http: \"0.0.0.0:5558\"}\n")
	noWeb := writeFile(t, "c.yaml", "issuer: https://login.example.com/dex\nstorage: {type: memory}\n")
	for _, tc := range []struct {
		name      string
		file      string
		o         Overrides
		http, tel string
		wantErr   string
	}{
		{name: "file only", file: withWeb, http: "0.0.0.0:5556", tel: "0.0.0.0:5558"},
		{name: "flags win", file: withWeb, o: Overrides{WebHTTP: "127.0.0.1:9", Telemetry: "127.0.0.1:10"}, http: "127.0.0.1:9", tel: "127.0.0.1:10"},
		{name: "empty flag keeps the file", file: withWeb, o: Overrides{WebHTTPS: ""}, http: "0.0.0.0:5556", tel: "0.0.0.0:5558"},
		{name: "no web section, flags give it", file: noWeb, o: Overrides{WebHTTP: "0.0.0.0:5556"}, http: "0.0.0.0:5556"},
		{name: "no web section, no flags", file: noWeb, wantErr: "web: needs an address to listen on"},
		{name: "bad flag named", file: noWeb, o: Overrides{WebHTTP: "5556"}, wantErr: `--web-http-addr (web.http): "5556" is not a listen address`},
		{name: "https flag needs the file's certificate", file: noWeb, o: Overrides{WebHTTPS: "0.0.0.0:5554"}, wantErr: "web.tlsCert: required with web.https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadWith(tc.file, LoadOptions{Overrides: tc.o})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Web.HTTP != tc.http || c.Telemetry.HTTP != tc.tel {
				t.Fatalf("web.http %q telemetry.http %q", c.Web.HTTP, c.Telemetry.HTTP)
			}
		})
	}
}

func TestFrontendDirEnv(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "c.yaml", baseYAML)
	t.Setenv(FrontendDirEnvVar, dir)
	c, err := Load(file)
	if err != nil || c.Frontend.Dir != dir {
		t.Fatalf("frontend.dir %q (%v), want %s from %s", c.Frontend.Dir, err, dir, FrontendDirEnvVar)
	}
	t.Setenv(FrontendDirEnvVar, filepath.Join(dir, "missing"))
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), FrontendDirEnvVar+" (frontend.dir)") {
		t.Fatalf("error %v does not name %s", err, FrontendDirEnvVar)
	}
}

// TestUnknownFieldsFlag: strict by default and with the flag true; with
// DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=false an unknown key is a warning,
// in the file and in a connector's config, while a Dex feature gatehouse
// lacks is still refused.
func TestUnknownFieldsFlag(t *testing.T) {
	src := baseYAML + "\nfrontnd: {theme: dark}\n"
	for _, tc := range []struct {
		value  string
		strict bool
	}{{"", true}, {"true", true}, {"1", true}, {"garbage", true}, {"false", false}, {"0", false}} {
		t.Run("value="+tc.value, func(t *testing.T) {
			t.Setenv(UnknownFieldsEnvVar, tc.value)
			c, err := Load(writeFile(t, "c.yaml", src))
			if tc.strict {
				if err == nil || !strings.Contains(err.Error(), "frontnd: unknown key; did you mean frontend?") {
					t.Fatalf("strict: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := c.Warnings()
			if len(w) != 1 || !strings.Contains(w[0].Error(), "frontnd: unknown key") || w[0].Line == 0 || w[0].File == "" {
				t.Fatalf("warnings %v", w)
			}
			var gh struct {
				ClientID string `json:"clientID"`
			}
			k := Connector{Config: []byte(`{"clientID": "x", "clientSecrt": "y"}`), keyPath: "connectors[0].config", warn: c.warn}
			if err := k.DecodeConfig(&gh); err != nil || gh.ClientID != "x" {
				t.Fatalf("connector config: %v", err)
			}
			if w := c.Warnings(); len(w) != 2 || !strings.Contains(w[1].Error(), "connectors[0].config.clientSecrt") {
				t.Fatalf("warnings %v", w)
			}
		})
	}
	t.Run("unsupported feature still refused", func(t *testing.T) {
		t.Setenv(UnknownFieldsEnvVar, "false")
		_, err := Load(writeFile(t, "c.yaml", baseYAML+"\ngrpc: {addr: \"0.0.0.0:5557\"}\n"))
		if err == nil || !strings.Contains(err.Error(), "gRPC API is not supported") {
			t.Fatalf("grpc: %v", err)
		}
	})
}

func TestContinueOnConnectorFailure(t *testing.T) {
	for v, want := range map[string]bool{"": true, "true": true, "false": false, "0": false, "nonsense": true} {
		t.Setenv(ContinueOnConnectorFailureEnvVar, v)
		if got := ContinueOnConnectorFailure(); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// TestExpandEnvLikeDex: strings in mappings at any depth and directly in
// lists are expanded; a list inside a list is not (Dex's expandEnvInMap).
func TestExpandEnvLikeDex(t *testing.T) {
	t.Setenv("X", "expanded")
	v := expandEnv(map[string]any{
		"s": "$X",
		"m": map[string]any{"s": "${X}"},
		"l": []any{"$X", map[string]any{"s": "$X"}, []any{"$X"}},
	}).(map[string]any)
	l := v["l"].([]any)
	if v["s"] != "expanded" || v["m"].(map[string]any)["s"] != "expanded" || l[0] != "expanded" ||
		l[1].(map[string]any)["s"] != "expanded" || l[2].([]any)[0] != "$X" {
		t.Fatalf("%v", v)
	}
}

// TestRenderTemplate renders as Dex's image entrypoint (gomplate) does:
// Dex v2.45.1's config.docker.yaml uses getenv with defaults, .Env and
// required.
func TestRenderTemplate(t *testing.T) {
	secretFile := writeFile(t, "secret", "from-file\n")
	for _, tc := range []struct {
		name, tmpl, want, wantErr string
		env                       map[string]string
	}{
		{name: "getenv default", tmpl: `a: {{ getenv "GH_UNSET" "dflt" }}`, want: "a: dflt"},
		{name: "getenv set", tmpl: `a: {{ getenv "GH_SET" "dflt" }}`, env: map[string]string{"GH_SET": "v"}, want: "a: v"},
		{name: "getenv empty takes default", tmpl: `a: {{ getenv "GH_SET" "dflt" }}`, env: map[string]string{"GH_SET": ""}, want: "a: dflt"},
		{name: "getenv _FILE", tmpl: `a: {{ getenv "GH_SECRET" }}`, env: map[string]string{"GH_SECRET_FILE": secretFile}, want: "a: from-file"},
		{name: "env.Getenv", tmpl: `a: {{ env.Getenv "GH_SET" }}`, env: map[string]string{"GH_SET": "v"}, want: "a: v"},
		{name: ".Env", tmpl: `a: {{ .Env.GH_SET }}|{{ .Env.GH_UNSET }}`, env: map[string]string{"GH_SET": "v"}, want: "a: v|"},
		{name: "if getenv", tmpl: "{{- if getenv \"GH_SET\" \"\" }}on{{- end }}", env: map[string]string{"GH_SET": "v"}, want: "on"},
		{name: "required ok", tmpl: `a: {{ getenv "GH_SET" | required "need GH_SET" }}`, env: map[string]string{"GH_SET": "v"}, want: "a: v"},
		{name: "required missing", tmpl: `a: {{ getenv "GH_UNSET" | required "$GH_UNSET in case of web.https is enabled" }}`, wantErr: "required: $GH_UNSET in case of web.https is enabled"},
		{name: "default", tmpl: `a: {{ getenv "GH_UNSET" | default "d" }}`, want: "a: d"},
		{name: "comment", tmpl: "{{- /* note */ -}}\na: 1", want: "a: 1"},
		{name: "unsupported function", tmpl: `a: {{ aws.EC2Meta "x" }}`, wantErr: `function "aws" not defined: gatehouse renders Dex's templates with gomplate's getenv`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Unsetenv("GH_UNSET")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			out, err := RenderTemplate("config.yaml", []byte(tc.tmpl))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Fatalf("%q %v, want %q", out, err, tc.want)
			}
		})
	}
}

func TestLoadTemplate(t *testing.T) {
	t.Setenv("GH_ISSUER", "https://login.example.com/dex")
	file := writeFile(t, "c.yaml", "issuer: {{ getenv \"GH_ISSUER\" }}\nstorage: {type: memory}\nweb: {http: \":5556\"}\n")
	c, err := LoadWith(file, LoadOptions{Template: true})
	if err != nil || c.Issuer != "https://login.example.com/dex" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := Load(file); err == nil {
		t.Fatal("a template read without rendering (as `dex serve` itself reads it) was accepted")
	}
}

// TestNumbersForStrings: an unquoted number or boolean where a string is
// expected is read as Dex's YAML reader (ghodss/yaml) reads it.
func TestNumbersForStrings(t *testing.T) {
	c, err := Parse([]byte("issuer: https://login.example.com/dex\nstaticClients:\n- {id: 1234, name: true, secret: 3.14159265358979, redirectURIs: [1e3]}\nweb: {tlsMinVersion: 1.2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.StaticClients[0]
	if cl.ID != "1234" || cl.Name != "true" || cl.Secret != "3.1415927" || cl.RedirectURIs[0] != "1000" || c.Web.TLSMinVersion != TLS12 {
		t.Fatalf("%+v %q", cl, c.Web.TLSMinVersion)
	}
}
