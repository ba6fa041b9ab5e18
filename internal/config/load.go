package config

import (
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// ExpandEnvVar is the environment variable that, set to false, turns off
// the expansion of $VAR in storage, connector and signer configs. Dex's
// name, kept so an existing deployment behaves the same.
const ExpandEnvVar = "DEX_EXPAND_ENV"

// Load reads the config file at path, applies defaults and validates it.
// All problems found are returned together (errors.Join of *FieldError,
// each naming the file, line and key).
func Load(path string) (*Config, error) {
	return LoadWith(path, LoadOptions{})
}

// LoadWith is Load with Dex's command-line overrides and, for Dex's image
// entrypoint, template rendering (see LoadOptions).
func LoadWith(path string, o LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if o.Template {
		if data, err = RenderTemplate(path, data); err != nil {
			return nil, err
		}
	}
	c, errs, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	set := c.applyOverrides(o.Overrides)
	c.ApplyDefaults()
	errs = append(errs, suppressFollowUps(c.validate(), errs)...)
	c.src.addLines(errs)
	for _, e := range errs {
		e.File = path
	}
	nameOverrides(errs, set)
	if c.warn != nil {
		for _, w := range c.warn.list {
			w.File = path
		}
	}
	sortByLine(errs)
	if len(errs) > 0 {
		return nil, joinFieldErrors(errs)
	}
	return c, nil
}

// Parse decodes a config from YAML (or JSON) bytes: Dex's format, strict
// (an unknown key is an error), with Dex's environment expansion and the
// *Env keys (idEnv, secretEnv, hashFromEnv, audit token variables)
// resolved. It neither applies defaults nor validates: Load does all three.
func Parse(data []byte) (*Config, error) {
	c, errs, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(errs) > 0 {
		c.src.addLines(errs)
		sortByLine(errs)
		return nil, joinFieldErrors(errs)
	}
	return c, nil
}

// parse returns the (possibly partial) config and the per-key errors, or
// a fatal error when the YAML itself cannot be read.
func parse(data []byte) (*Config, []*FieldError, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	tree, err := decodeGeneric(js)
	if err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	c := &Config{src: newSource(data)}
	if tree == nil {
		return c, nil, nil // empty file: Validate says what is missing
	}
	root, ok := tree.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("the top level must be a mapping of keys (issuer, storage, web, ...), not %s", kindName(tree))
	}
	if expandEnvEnabled() {
		expandEnvSections(root)
	}
	d := &decoder{lenient: unknownFieldsAllowed()}
	d.decode("", root, reflect.ValueOf(c).Elem())
	if d.lenient {
		c.warn = &warnings{}
		c.src.addLines(d.warns)
		c.warn.add(d.warns)
	}
	for i := range c.Connectors {
		c.Connectors[i].keyPath = fmt.Sprintf("connectors[%d].config", i)
		c.Connectors[i].src = c.src
		c.Connectors[i].warn = c.warn
	}
	d.errs = append(d.errs, c.resolveEnvRefs()...)
	return c, d.errs, nil
}

// sortByLine orders errors by line, keeping the order of errors on one
// line; errors without a line go last.
func sortByLine(errs []*FieldError) {
	sort.SliceStable(errs, func(i, j int) bool {
		li, lj := errs[i].Line, errs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
}

// suppressFollowUps drops validation errors about a key that already has a
// decoding error (or lies under one): they would only repeat it.
func suppressFollowUps(verrs, derrs []*FieldError) []*FieldError {
	var out []*FieldError
next:
	for _, v := range verrs {
		for _, d := range derrs {
			if v.Path == d.Path || strings.HasPrefix(v.Path, d.Path+".") || strings.HasPrefix(v.Path, d.Path+"[") {
				continue next
			}
		}
		out = append(out, v)
	}
	return out
}

// expandEnvEnabled follows Dex's feature flag: on unless DEX_EXPAND_ENV
// parses as false.
func expandEnvEnabled() bool { return dexFlag(ExpandEnvVar, true) }

// expandEnvSections expands $VAR and ${VAR} (os.ExpandEnv) in every string
// of the sections where Dex expands them: storage.config,
// connectors[*].config and signer.config; gatehouse adds
// audit.storage.config. Other values are taken literally, as in Dex.
func expandEnvSections(root map[string]any) {
	expandConfigOf := func(v any) {
		if m, ok := v.(map[string]any); ok {
			for k, cfg := range m {
				if strings.EqualFold(k, "config") {
					m[k] = expandEnv(cfg)
				}
			}
		}
	}
	for k, v := range root {
		switch strings.ToLower(k) {
		case "storage", "signer":
			expandConfigOf(v)
		case "connectors":
			if list, ok := v.([]any); ok {
				for _, c := range list {
					expandConfigOf(c)
				}
			}
		case "audit":
			if m, ok := v.(map[string]any); ok {
				for ak, av := range m {
					if strings.EqualFold(ak, "storage") {
						expandConfigOf(av)
					}
				}
			}
		}
	}
}

// expandEnv expands strings at any depth of mappings, and the strings and
// mappings directly inside lists: exactly where Dex's expandEnvInMap does
// (a list nested in a list is left alone, as in Dex).
func expandEnv(v any) any {
	switch x := v.(type) {
	case string:
		return os.ExpandEnv(x)
	case map[string]any:
		for k, e := range x {
			x[k] = expandEnv(e)
		}
	case []any:
		for i, e := range x {
			switch e.(type) {
			case string, map[string]any:
				x[i] = expandEnv(e)
			}
		}
	}
	return v
}

// lookupEnv returns the value of a variable named by an *Env key, or an
// error when it is unset or empty.
func lookupEnv(name string) (string, error) {
	v, ok := os.LookupEnv(name)
	if !ok {
		return "", fmt.Errorf("environment variable %s is not set; set it or write the value in the file", name)
	}
	if v == "" {
		return "", fmt.Errorf("environment variable %s is empty", name)
	}
	return v, nil
}

// resolveEnvRefs fills values from the *Env keys, as Dex does at start-up.
func (c *Config) resolveEnvRefs() []*FieldError {
	var errs []*FieldError
	fail := func(path string, err error) { errs = append(errs, &FieldError{Path: path, Err: err}) }
	for i := range c.StaticClients {
		cl := &c.StaticClients[i]
		p := fmt.Sprintf("staticClients[%d]", i)
		if cl.IDEnv != "" {
			if cl.ID != "" {
				fail(p+".idEnv", fmt.Errorf("id and idEnv exclude each other; keep one"))
			} else if v, err := lookupEnv(cl.IDEnv); err != nil {
				fail(p+".idEnv", err)
			} else {
				cl.ID = v
			}
		}
		if cl.SecretEnv != "" {
			if cl.Secret != "" {
				fail(p+".secretEnv", fmt.Errorf("secret and secretEnv exclude each other; keep one"))
			} else if v, err := lookupEnv(cl.SecretEnv); err != nil {
				fail(p+".secretEnv", err)
			} else {
				cl.Secret = v
			}
		}
	}
	for i := range c.StaticPasswords {
		pw := &c.StaticPasswords[i]
		if pw.Hash == "" && pw.HashFromEnv != "" {
			if v, err := lookupEnv(pw.HashFromEnv); err != nil {
				fail(fmt.Sprintf("staticPasswords[%d].hashFromEnv", i), err)
			} else {
				pw.Hash = v
			}
		}
	}
	if name := c.Audit.Webhook.BearerTokensEnv; name != "" {
		if v, err := lookupEnv(name); err != nil {
			fail("audit.webhook.bearerTokensEnv", err)
		} else {
			c.Audit.Webhook.BearerTokens = append(c.Audit.Webhook.BearerTokens, strings.FieldsFunc(v, func(r rune) bool {
				return r == ',' || r == ' ' || r == '\n' || r == '\t'
			})...)
		}
	}
	for i := range c.Audit.Forward {
		f := &c.Audit.Forward[i]
		if f.BearerTokenEnv == "" {
			continue
		}
		p := fmt.Sprintf("audit.forward[%d].bearerTokenEnv", i)
		if f.BearerToken != "" {
			fail(p, fmt.Errorf("bearerToken and bearerTokenEnv exclude each other; keep one"))
		} else if v, err := lookupEnv(f.BearerTokenEnv); err != nil {
			fail(p, err)
		} else {
			f.BearerToken = strings.TrimSpace(v)
		}
	}
	return errs
}
