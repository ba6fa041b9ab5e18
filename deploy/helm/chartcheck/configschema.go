package chartcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/internal/config"
	"github.com/gatehouse-dev/gatehouse/internal/connector/github"
	"github.com/gatehouse-dev/gatehouse/internal/connector/ldap"
	"github.com/gatehouse-dev/gatehouse/internal/connector/oidc"
)

// ConfigSchema is the JSON Schema of the chart's `config` value:
// gatehouse's config types with the connectors gatehouse builds
// (config.Schema). A new connector type goes here too.
func ConfigSchema() map[string]any {
	return config.Schema(config.SchemaOptions{Connectors: map[string]any{
		config.ConnectorGitHub: github.Config{},
		config.ConnectorOIDC:   oidc.Config{},
		config.ConnectorLDAP:   ldap.Config{},
	}})
}

// ValuesSchemaFile is the chart's values.schema.json.
func ValuesSchemaFile() (string, error) {
	dir, err := ChartDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "values.schema.json"), nil
}

// configRange finds the value of properties.config in values.schema.json
// as a byte range (from just after the key to the value's end), so that
// it can be replaced while the hand-written rest stays as it is.
func configRange(data []byte) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	expect := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if tok != want {
			return fmt.Errorf("values.schema.json: %v where %v was expected", tok, want)
		}
		return nil
	}
	// walk returns the range of key's value inside the object that starts
	// at the decoder's position.
	walk := func(key string, enter bool) (int, int, error) {
		if enter {
			if err := expect('{'); err != nil {
				return 0, 0, err
			}
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return 0, 0, err
			}
			start := int(dec.InputOffset())
			if tok == key {
				return start, 0, nil
			}
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return 0, 0, err
			}
		}
		return 0, 0, fmt.Errorf("values.schema.json: no %q", key)
	}
	if _, _, err := walk("properties", true); err != nil {
		return 0, 0, err
	}
	if _, _, err := walk("config", true); err != nil {
		return 0, 0, err
	}
	start = int(dec.InputOffset())
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return 0, 0, err
	}
	return start, int(dec.InputOffset()), nil
}

// CommittedConfigSchema returns properties.config of values.schema.json.
func CommittedConfigSchema() (any, error) {
	file, err := ValuesSchemaFile()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc struct {
		Properties struct {
			Config any `json:"config"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if doc.Properties.Config == nil {
		return nil, errors.New(file + ": no properties.config")
	}
	return doc.Properties.Config, nil
}

// UpdateValuesSchema writes ConfigSchema into values.schema.json as
// properties.config, leaving the rest of the file as it is, and reports
// whether the file changed.
func UpdateValuesSchema() (bool, error) {
	file, err := ValuesSchemaFile()
	if err != nil {
		return false, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return false, err
	}
	start, end, err := configRange(data)
	if err != nil {
		return false, err
	}
	gen, err := json.MarshalIndent(ConfigSchema(), "    ", "  ")
	if err != nil {
		return false, err
	}
	out := append(append(append([]byte{}, data[:start]...), append([]byte(": "), gen...)...), data[end:]...)
	if bytes.Equal(out, data) {
		return false, nil
	}
	if !json.Valid(out) {
		return false, errors.New("values.schema.json: the update would not be valid JSON")
	}
	return true, os.WriteFile(file, out, 0o644)
}
