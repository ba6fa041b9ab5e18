package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"text/template"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Plugin mirrors Krew's plugin manifest (krew.googlecontainertools.github.com/v1alpha2,
// sigs.k8s.io/krew/pkg/index.Plugin), for a strict decode. The krew module
// itself is not imported: it would pull an old client-go into go.mod.
type Plugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec PluginSpec `json:"spec"`
}

// PluginSpec is the plugin's specification.
type PluginSpec struct {
	Version          string         `json:"version"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description"`
	Caveats          string         `json:"caveats"`
	Homepage         string         `json:"homepage"`
	Platforms        []KrewPlatform `json:"platforms"`
}

// KrewPlatform is one archive and the platforms it runs on.
type KrewPlatform struct {
	URI      string                `json:"uri"`
	Sha256   string                `json:"sha256"`
	Selector *metav1.LabelSelector `json:"selector"`
	Files    []FileOperation       `json:"files"`
	Bin      string                `json:"bin"`
}

// FileOperation copies a file out of the archive.
type FileOperation struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// RenderKrew fills a manifest template in krew-release-bot's syntax:
// {{ .TagName }} is version, and {{addURIAndSha "URL" .TagName}} (URL
// itself a template of .TagName) becomes "uri: URL" and, indented by four
// spaces on the next line, "sha256: <sum>" with the sum shaOf gives.
func RenderKrew(text, version string, shaOf func(uri string) (string, error)) ([]byte, error) {
	data := struct{ TagName string }{version}
	funcs := template.FuncMap{
		"addURIAndSha": func(uriTemplate, tag string) (string, error) {
			t, err := template.New("uri").Parse(uriTemplate)
			if err != nil {
				return "", err
			}
			var b bytes.Buffer
			if err := t.Execute(&b, struct{ TagName string }{tag}); err != nil {
				return "", err
			}
			sum, err := shaOf(b.String())
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("uri: %s\n    sha256: %s", b.String(), sum), nil
		},
	}
	t, err := template.New("krew").Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	return out.Bytes(), nil
}

var (
	sha256Re  = regexp.MustCompile(`^[a-f0-9]{64}$`)
	nameRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	versionRe = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
)

// ParseKrew decodes a rendered manifest strictly (unknown or duplicate
// keys are errors) and checks what Krew's index validation checks: the
// API version and kind, a plugin name, a semantic version with a leading
// v, a short description, and for every platform a selector, an https
// URI, a sha256, a bin and files to copy; os/arch selectors may not
// repeat.
func ParseKrew(manifest []byte) (*Plugin, error) {
	js, err := yaml.YAMLToJSONStrict(manifest)
	if err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	var p Plugin
	d := json.NewDecoder(bytes.NewReader(js))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	var errs []error
	if p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin" {
		errs = append(errs, fmt.Errorf("apiVersion/kind %s/%s", p.APIVersion, p.Kind))
	}
	if !nameRe.MatchString(p.Metadata.Name) {
		errs = append(errs, fmt.Errorf("metadata.name %q", p.Metadata.Name))
	}
	if !versionRe.MatchString(p.Spec.Version) {
		errs = append(errs, fmt.Errorf("spec.version %q is not a semantic version with a leading v", p.Spec.Version))
	}
	if p.Spec.ShortDescription == "" || len(p.Spec.ShortDescription) > 50 {
		errs = append(errs, fmt.Errorf("spec.shortDescription %q: required, at most 50 characters", p.Spec.ShortDescription))
	}
	if len(p.Spec.Platforms) == 0 {
		errs = append(errs, errors.New("no platforms"))
	}
	seen := map[string]bool{}
	for i, pl := range p.Spec.Platforms {
		at := fmt.Sprintf("spec.platforms[%d]", i)
		if pl.Selector == nil || len(pl.Selector.MatchLabels) == 0 {
			errs = append(errs, fmt.Errorf("%s: no selector", at))
		} else {
			key := pl.Selector.MatchLabels["os"] + "/" + pl.Selector.MatchLabels["arch"]
			if seen[key] {
				errs = append(errs, fmt.Errorf("%s: %s listed twice", at, key))
			}
			seen[key] = true
		}
		if u, err := url.Parse(pl.URI); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: uri %q is not https", at, pl.URI))
		}
		if !sha256Re.MatchString(pl.Sha256) {
			errs = append(errs, fmt.Errorf("%s: sha256 %q", at, pl.Sha256))
		}
		if pl.Bin == "" || strings.ContainsAny(pl.Bin, `/\`) {
			errs = append(errs, fmt.Errorf("%s: bin %q", at, pl.Bin))
		}
		if len(pl.Files) == 0 {
			errs = append(errs, fmt.Errorf("%s: no files", at))
		}
		binCopied := false
		for _, f := range pl.Files {
			if f.From == "" || f.To == "" {
				errs = append(errs, fmt.Errorf("%s: file operation %+v", at, f))
			}
			if f.From == pl.Bin {
				binCopied = true
			}
		}
		if !binCopied {
			errs = append(errs, fmt.Errorf("%s: bin %s is not among the files copied", at, pl.Bin))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("krew manifest: %w", err)
	}
	return &p, nil
}
