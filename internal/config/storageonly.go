package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"sigs.k8s.io/yaml"
)

// LoadStorage reads only the storage section of a config file, Dex's or
// gatehouse's, with the same decoding, $VAR expansion, defaults and
// checks as Load. `gatehouse migrate from-dex` reads where a Dex
// installation keeps its data this way, whatever else Dex's config holds.
func LoadStorage(path string) (Storage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Storage{}, fmt.Errorf("config: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return Storage{}, fmt.Errorf("config %s: not valid YAML: %w", path, err)
	}
	tree, err := decodeGeneric(js)
	if err != nil {
		return Storage{}, fmt.Errorf("config %s: not valid YAML: %w", path, err)
	}
	root, _ := tree.(map[string]any)
	var section any
	for k, v := range root {
		if strings.EqualFold(k, "storage") {
			section = v
		}
	}
	if section == nil {
		return Storage{}, fmt.Errorf("config %s: no storage section", path)
	}
	only := map[string]any{"storage": section}
	if expandEnvEnabled() {
		expandEnvSections(only)
	}
	c := &Config{src: newSource(data)}
	d := &decoder{}
	d.decode("storage", only["storage"], reflect.ValueOf(&c.Storage).Elem())
	errs := d.errs
	if len(errs) == 0 {
		if c.Storage.Type == "" {
			errs = append(errs, &FieldError{Path: "storage.type", Err: errors.New("required")})
		} else {
			c.ApplyDefaults()
			v := &validator{}
			c.validateStorage(v, "storage", c.Storage)
			errs = v.errs
		}
	}
	if len(errs) > 0 {
		c.src.addLines(errs)
		for _, e := range errs {
			e.File = path
		}
		return Storage{}, joinFieldErrors(errs)
	}
	return c.Storage, nil
}
