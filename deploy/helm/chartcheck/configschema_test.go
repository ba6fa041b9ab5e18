package chartcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/github"
	"github.com/gatehouse-dev/gatehouse/internal/connector/ldap"
	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc"
)

// TestConfigSchemaUpToDate: the chart's schema of `config` is the one
// generated from gatehouse's config types.
func TestConfigSchemaUpToDate(t *testing.T) {
	committed, err := CommittedConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ConfigSchema())
	var gen any
	_ = json.Unmarshal(b, &gen)
	if !reflect.DeepEqual(committed, gen) {
		t.Fatal("values.schema.json's properties.config is not what gatehouse's config types give: run go run ./deploy/helm/chartcheck/cmd/configschema")
	}
}

// compileConfigSchema compiles the committed schema of `config` with the
// JSON Schema library (and version) helm validates values with.
func compileConfigSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	s, err := CommittedConfigSchema()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("config.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("config.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// schemaAccepts validates a config (as a decoded YAML tree) as helm would.
func schemaAccepts(sch *jsonschema.Schema, tree any) error {
	b, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

// gatehouseAccepts is what gatehouse checks of the same document without
// the machine it runs on: decoding (every key and type, the connectors'
// configs included) and the issuer rule. (A missing issuer is the
// templates' to refuse: with existingSecret, `config` holds no issuer.)
func gatehouseAccepts(tree any) error {
	b, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	c, err := config.Parse(b)
	if err != nil {
		return err
	}
	for _, k := range c.Connectors {
		var err error
		switch k.Type {
		case config.ConnectorGitHub:
			err = k.DecodeConfig(&github.Config{})
		case config.ConnectorOIDC:
			err = k.DecodeConfig(&oidc.Config{})
		case config.ConnectorLDAP:
			err = k.DecodeConfig(&ldap.Config{})
		}
		if err != nil {
			return err
		}
	}
	c.ApplyDefaults()
	for _, fe := range config.FieldErrors(c.Validate()) {
		if fe.Path == "issuer" && c.Issuer != "" {
			return fe
		}
	}
	return nil
}

// configDocuments are real configs: Dex's examples, the repository's
// config test files and the chart's value sets' configs.
func configDocuments(t *testing.T) map[string]any {
	t.Helper()
	docs := map[string]any{}
	add := func(name string, data []byte) {
		var tree any
		if err := yaml.Unmarshal(data, &tree); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		docs[name] = tree
	}
	for _, glob := range []string{"../../../internal/config/testdata/*.yaml", "../../../cmd/gatehouse/testdata/dex/*.yaml*", "../../../internal/connector/ldap/testdata/dex-config-*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte("{{")) {
				t.Setenv("DEX_STORAGE_SQLITE3_CONFIG_FILE", "/var/dex/dex.db")
				if data, err = config.RenderTemplate(f, data); err != nil {
					t.Fatal(err)
				}
			}
			add(filepath.Base(f), data)
		}
	}
	sets, err := ValueSets()
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range sets {
		data, err := os.ReadFile(vs.File)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Config any `json:"config"`
		}
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if v.Config != nil {
			docs["chart "+vs.Name] = v.Config
		}
	}
	if len(docs) < 10 {
		t.Fatalf("only %d config documents", len(docs))
	}
	return docs
}

func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// mutation is a changed copy of a document.
type mutation struct {
	what string
	doc  any
}

// mutations misspell every key and give every value a wrong shape, one
// at a time.
func mutations(doc any) []mutation {
	var out []mutation
	var walk func(path []any)
	get := func(root any, path []any) any {
		v := root
		for _, p := range path {
			switch k := p.(type) {
			case string:
				v = v.(map[string]any)[k]
			case int:
				v = v.([]any)[k]
			}
		}
		return v
	}
	walk = func(path []any) {
		v := get(doc, path)
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				// misspelt key
				c := deepCopy(doc)
				m := get(c, path).(map[string]any)
				m[k+"x"] = m[k]
				delete(m, k)
				out = append(out, mutation{fmt.Sprintf("%v: key %s misspelt", path, k), c})
				// wrong shape
				c = deepCopy(doc)
				m = get(c, path).(map[string]any)
				switch m[k].(type) {
				case map[string]any, []any:
					m[k] = "text"
				default:
					m[k] = map[string]any{"x": []any{1}}
				}
				out = append(out, mutation{fmt.Sprintf("%v: %s of the wrong type", path, k), c})
				walk(append(append([]any{}, path...), k))
			}
		case []any:
			for i := range x {
				walk(append(append([]any{}, path...), i))
			}
		}
	}
	walk(nil)
	return out
}

// TestConfigSchemaAgreesWithGatehouse holds the chart's schema to
// gatehouse's own decoding, on real configs and on every key misspelt and
// every value of a wrong shape in them: the schema refuses at `helm
// install` what gatehouse would refuse at start-up, and accepts what it
// accepts.
func TestConfigSchemaAgreesWithGatehouse(t *testing.T) {
	for k, v := range map[string]string{"GITHUB_CLIENT_ID": "id", "GITHUB_CLIENT_SECRET": "secret", "KUBERNETES_CLIENT_SECRET": "s", "AUDIT_TOKENS": "0123456789abcdef0123456789abcdef", "POSTGRES_PASSWORD": "p", "DATA_DIR": "/data"} {
		t.Setenv(k, v)
	}
	sch := compileConfigSchema(t)
	docs := configDocuments(t)
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	sort.Strings(names)
	checked, refused := 0, 0
	for _, name := range names {
		doc := docs[name]
		t.Run(name, func(t *testing.T) {
			cases := append([]mutation{{"as written", doc}}, mutations(doc)...)
			for _, m := range cases {
				g, s := gatehouseAccepts(m.doc), schemaAccepts(sch, m.doc)
				checked++
				if g != nil {
					refused++
				}
				if (g == nil) != (s == nil) {
					t.Errorf("%s: gatehouse says %v; the chart's schema says %v", m.what, orOK(g), orOK(s))
				}
			}
		})
	}
	t.Logf("%d documents, %d refused by both", checked, refused)
	if refused == 0 || refused == checked {
		t.Fatal("the cases do not tell accepting from refusing")
	}
}

func orOK(err error) string {
	if err == nil {
		return "ok"
	}
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return strings.ReplaceAll(ve.Error(), "\n", " ")
	}
	return err.Error()
}

// TestConfigSchemaNamesTheMistake: the cases, as helm reports
// them.
func TestConfigSchemaNamesTheMistake(t *testing.T) {
	sch := compileConfigSchema(t)
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"misspelt nested key", "issuer: https://login.example.com/dex\noauth2: {skipAprovalScreen: true}\n", "skipAprovalScreen"},
		{"http issuer on a public host", "issuer: http://login.example.com/dex\n", "/issuer"},
		{"unknown storage type", "issuer: https://login.example.com/dex\nstorage: {type: etcd}\n", "/storage/type"},
		{"misspelt connector key", "issuer: https://login.example.com/dex\nconnectors: [{type: github, id: github, name: GitHub, config: {clientID: a, clientSecrt: b}}]\n", "clientSecrt"},
		{"gRPC section", "issuer: https://login.example.com/dex\ngrpc: {addr: \"0.0.0.0:5557\"}\n", "/grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tree any
			if err := yaml.Unmarshal([]byte(tc.yaml), &tree); err != nil {
				t.Fatal(err)
			}
			err := schemaAccepts(sch, tree)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("schema: %v, want it to name %s", err, tc.want)
			}
			if gatehouseAccepts(tree) == nil {
				t.Fatal("gatehouse accepts it")
			}
		})
	}
}
