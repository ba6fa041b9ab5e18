// Command configschema writes the schema of the Helm chart's `config`
// value (deploy/helm/gatehouse/values.schema.json, properties.config)
// from gatehouse's config types: go run ./deploy/helm/chartcheck/cmd/configschema
package main

import (
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/deploy/helm/chartcheck"
)

func main() {
	changed, err := chartcheck.UpdateValuesSchema()
	if err != nil {
		fmt.Fprintln(os.Stderr, "configschema:", err)
		os.Exit(1)
	}
	if changed {
		fmt.Println("values.schema.json: config schema updated")
	} else {
		fmt.Println("values.schema.json: config schema up to date")
	}
}
