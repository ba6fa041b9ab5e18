package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"text/template"
)

// TemplateSuffixes are the file names Dex's image entrypoint
// (cmd/docker-entrypoint) renders with gomplate before `dex serve` reads
// them.
var TemplateSuffixes = []string{".tpl", ".tmpl", ".yaml"}

// IsTemplateName reports whether Dex's image would render the file name.
func IsTemplateName(name string) bool {
	for _, s := range TemplateSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// RenderTemplate renders a config file the way Dex's container image does
// before `dex serve` reads it: Dex's entrypoint runs gomplate on it, and
// Dex's own config.docker.yaml is written for that (getenv with defaults,
// .Env, required).
//
// Written by hand on text/template (gomplate's own engine) instead of
// linking gomplate: its library brings cloud SDKs and datasources that
// would double the binary and the start-up work of every `gatehouse
// serve`. The functions are gomplate's, with gomplate's meaning:
//
//	getenv NAME [DEFAULT]   the variable, else DEFAULT when unset or empty;
//	                        NAME_FILE names a file holding it (gomplate's rule)
//	env.Getenv NAME [DEFAULT], env.ExpandEnv STRING
//	.Env.NAME               the variable ("" when unset)
//	required [MESSAGE] VALUE  fails with MESSAGE when VALUE is empty
//	default DEFAULT VALUE   VALUE, else DEFAULT when empty
//
// Any other gomplate function fails with an error that names it.
func RenderTemplate(path string, data []byte) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	t, err := template.New(path).Option("missingkey=zero").Funcs(template.FuncMap{
		"getenv":   getenvTemplate,
		"env":      func() envNamespace { return envNamespace{} },
		"required": requiredTemplate,
		"default":  defaultTemplate,
	}).Parse(string(data))
	if err != nil {
		return nil, templateError(path, err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, map[string]any{"Env": env}); err != nil {
		return nil, templateError(path, err)
	}
	return out.Bytes(), nil
}

var undefinedFunc = regexp.MustCompile(`function "([^"]+)" not defined`)

func templateError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: ")
	if m := undefinedFunc.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("config %s: rendering it as Dex's image does (gomplate): %s: gatehouse renders Dex's templates with gomplate's getenv, env.Getenv, env.ExpandEnv, .Env, required and default only; render the file beforehand, or use $VAR in connector and storage configs, which gatehouse expands as Dex does", path, msg)
	}
	return fmt.Errorf("config %s: rendering it as Dex's image does (gomplate): %s", path, msg)
}

// envNamespace is gomplate's env namespace.
type envNamespace struct{}

// Getenv is gomplate's env.Getenv.
func (envNamespace) Getenv(name string, def ...string) (string, error) {
	return getenvTemplate(name, def...)
}

// ExpandEnv is gomplate's env.ExpandEnv.
func (envNamespace) ExpandEnv(s string) string { return os.ExpandEnv(s) }

func getenvTemplate(name string, def ...string) (string, error) {
	if len(def) > 1 {
		return "", fmt.Errorf("getenv %s: takes a name and at most one default, not %d", name, 1+len(def))
	}
	v := os.Getenv(name)
	if v == "" {
		if f := os.Getenv(name + "_FILE"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return "", fmt.Errorf("getenv %s: %s_FILE: %w", name, name, err)
			}
			v = strings.TrimRight(string(b), "\r\n")
		}
	}
	if v == "" && len(def) == 1 {
		v = def[0]
	}
	return v, nil
}

func isEmptyTemplateValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	}
	return false
}

func requiredTemplate(args ...any) (any, error) {
	switch len(args) {
	case 1:
		if isEmptyTemplateValue(args[0]) {
			return nil, errors.New("required: can not render: value is empty")
		}
		return args[0], nil
	case 2:
		if isEmptyTemplateValue(args[1]) {
			return nil, fmt.Errorf("required: %v", args[0])
		}
		return args[1], nil
	}
	return nil, fmt.Errorf("required: takes [message] value, not %d arguments", len(args))
}

func defaultTemplate(def, v any) any {
	if isEmptyTemplateValue(v) {
		return def
	}
	if b, ok := v.(bool); ok && !b {
		return def
	}
	return v
}
