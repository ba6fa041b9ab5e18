package config

import (
	"os"
	"strconv"
	"sync"
)

// Environment variables Dex reads at start-up, kept with Dex's names and
// meaning so that a deployment written for Dex behaves the same.
const (
	// UnknownFieldsEnvVar is Dex's config_disallow_unknown_fields feature
	// flag. It is not in Dex v2.45.1 (Dex's main branch added it after
	// that release, default false: unknown keys ignored). gatehouse always
	// refuses unknown keys unless this variable is explicitly false; then
	// each unknown key is logged as a warning at start-up instead. Keys of
	// Dex features that gatehouse does not have are refused either way.
	UnknownFieldsEnvVar = "DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS"
	// FrontendDirEnvVar fills frontend.dir when the file leaves it empty
	// (Dex's `dex serve` does the same).
	FrontendDirEnvVar = "DEX_FRONTEND_DIR"
	// ContinueOnConnectorFailureEnvVar is Dex's
	// continue_on_connector_failure feature flag (default true in Dex
	// v2.45.1): a connector that fails to open is logged and left out
	// instead of stopping start-up. gatehouse also retries it in the
	// background and serves it once it opens. Set to false, a connector
	// that cannot be opened stops start-up, as in Dex. Unlike Dex,
	// gatehouse starts even when every connector fails (Dex then exits):
	// the retries bring them in when their upstreams come back.
	ContinueOnConnectorFailureEnvVar = "DEX_CONTINUE_ON_CONNECTOR_FAILURE"
)

// ContinueOnConnectorFailure reads ContinueOnConnectorFailureEnvVar as Dex
// reads its feature flags: strconv.ParseBool, default true.
func ContinueOnConnectorFailure() bool { return dexFlag(ContinueOnConnectorFailureEnvVar, true) }

// dexFlag reads one of Dex's feature flags as Dex does
// (pkg/featureflags): strconv.ParseBool of the variable, the default when
// it is unset or unparsable.
func dexFlag(name string, def bool) bool {
	raw := os.Getenv(name)
	if raw == "" {
		return def
	}
	on, err := strconv.ParseBool(raw)
	if err != nil {
		return def
	}
	return on
}

// unknownFieldsAllowed reports whether UnknownFieldsEnvVar is explicitly
// false (gatehouse's default is true: strict).
func unknownFieldsAllowed() bool { return !dexFlag(UnknownFieldsEnvVar, true) }

// warnings collects problems start-up logs without stopping: unknown
// keys in the lenient mode of UnknownFieldsEnvVar, found while the file
// is parsed and while each connector decodes its config.
type warnings struct {
	mu   sync.Mutex
	list []*FieldError
}

func (w *warnings) add(errs []*FieldError) {
	if w == nil || len(errs) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, errs...)
}

// Warnings returns what start-up should log: with
// DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS=false, the unknown keys of the file
// and of the connectors' configs decoded so far (each names its key and
// line). It is empty in the default, strict mode.
func (c *Config) Warnings() []*FieldError {
	if c.warn == nil {
		return nil
	}
	c.warn.mu.Lock()
	defer c.warn.mu.Unlock()
	return append([]*FieldError(nil), c.warn.list...)
}

// LoadOptions are what `dex serve` takes besides the file.
type LoadOptions struct {
	// Overrides are the listen addresses given on the command line.
	Overrides Overrides
	// Template renders the file as Dex's image entrypoint does before
	// parsing it (see RenderTemplate).
	Template bool
}

// Overrides are Dex's `serve` flags. As in Dex, a flag that is given (not
// empty) replaces the file's value; with them, a file without a web
// section is complete.
type Overrides struct {
	// WebHTTP is --web-http-addr (web.http).
	WebHTTP string
	// WebHTTPS is --web-https-addr (web.https).
	WebHTTPS string
	// Telemetry is --telemetry-addr (telemetry.http).
	Telemetry string
}

// Flag names of the overrides, as Dex spells them.
const (
	FlagWebHTTP   = "--web-http-addr"
	FlagWebHTTPS  = "--web-https-addr"
	FlagTelemetry = "--telemetry-addr"
)

// applyOverrides applies o (and DEX_FRONTEND_DIR) the way Dex's
// applyConfigOverrides does, and returns which keys now come from where
// (key path -> flag or variable name) for error messages.
func (c *Config) applyOverrides(o Overrides) map[string]string {
	from := map[string]string{}
	for _, kv := range []struct {
		val, key, flag string
		dst            *string
	}{
		{o.WebHTTP, "web.http", FlagWebHTTP, &c.Web.HTTP},
		{o.WebHTTPS, "web.https", FlagWebHTTPS, &c.Web.HTTPS},
		{o.Telemetry, "telemetry.http", FlagTelemetry, &c.Telemetry.HTTP},
	} {
		if kv.val != "" {
			*kv.dst = kv.val
			from[kv.key] = kv.flag
		}
	}
	if c.Frontend.Dir == "" {
		if d := os.Getenv(FrontendDirEnvVar); d != "" {
			c.Frontend.Dir = d
			from["frontend.dir"] = FrontendDirEnvVar
		}
	}
	return from
}

// nameOverrides makes an error about a key that came from the command line
// or the environment name that flag or variable: the file's line would
// point at a value that is not the one used.
func nameOverrides(errs []*FieldError, from map[string]string) {
	for _, e := range errs {
		if src, ok := from[e.Path]; ok {
			e.Path = src + " (" + e.Path + ")"
			e.Line = 0
		}
	}
}
