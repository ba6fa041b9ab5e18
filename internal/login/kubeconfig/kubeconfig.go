// Package kubeconfig reads and updates the oidc auth-provider of a
// kubeconfig user, for kubelogin's standalone mode (`kubectl oidc-login
// [--kubeconfig F] [--context C] [--user U]`), which logs in and writes the
// ID token and refresh token into the kubeconfig, as kubelogin does.
//
// kubelogin uses client-go's clientcmd; here kubectl does the loading
// (`kubectl config view --raw -o json`), so that the kubeconfig is read
// exactly as kubectl reads it (the KUBECONFIG list, merging, defaults),
// without linking client-go or a YAML library into the plugin, whose
// package initialisation every kubectl command would pay (see
// docs/benchmarks.md). The file is written back the way clientcmd writes
// it (kubelogin's behaviour): the whole file as YAML with sorted keys,
// without comments or fields kubectl does not know.
package kubeconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// AuthProvider is a user's oidc auth-provider and where it is defined.
type AuthProvider struct {
	// LocationOfOrigin is the file that defines the user.
	LocationOfOrigin string
	UserName         string
	ContextName      string

	IDPIssuerURL                string // idp-issuer-url
	ClientID                    string // client-id
	ClientSecret                string // client-secret
	IDPCertificateAuthority     string // idp-certificate-authority
	IDPCertificateAuthorityData string // idp-certificate-authority-data
	ExtraScopes                 []string
	IDToken                     string // id-token
	RefreshToken                string // refresh-token
}

// Kubectl reads kubeconfig files through kubectl.
type Kubectl struct {
	// Command is the kubectl executable (default "kubectl").
	Command string
	// Getenv reads KUBECONFIG and HOME (default os.Getenv).
	Getenv func(string) string
}

type config struct {
	CurrentContext string `json:"current-context"`
	Contexts       []struct {
		Name    string `json:"name"`
		Context struct {
			User string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			AuthProvider *struct {
				Name   string            `json:"name"`
				Config map[string]string `json:"config"`
			} `json:"auth-provider"`
		} `json:"user"`
	} `json:"users"`
}

// view runs kubectl config view on file (all of the KUBECONFIG list when
// file is empty) and returns its JSON.
func (k Kubectl) view(ctx context.Context, file string) ([]byte, error) {
	cmd := k.Command
	if cmd == "" {
		cmd = "kubectl"
	}
	args := []string{"config", "view", "--raw", "-o", "json"}
	if file != "" {
		args = append(args, "--kubeconfig="+file)
	}
	c := exec.CommandContext(ctx, cmd, args...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("standalone mode reads the kubeconfig with kubectl, which is not on PATH: %w", err)
		}
		return nil, fmt.Errorf("kubectl config view: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// files are the kubeconfig files in kubectl's order of precedence: the
// explicit one, else $KUBECONFIG's list, else ~/.kube/config.
func (k Kubectl) files(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	getenv := k.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var out []string
	seen := map[string]bool{}
	for _, f := range filepath.SplitList(getenv("KUBECONFIG")) {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		home := getenv("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		out = []string{filepath.Join(home, ".kube", "config")}
	}
	return out
}

// Find returns the oidc auth-provider of user (or of contextName's user, or
// of the current context's user), as kubelogin resolves it.
func (k Kubectl) Find(ctx context.Context, explicit, contextName, user string) (*AuthProvider, error) {
	if explicit != "" {
		// kubectl would read a missing explicit file as an empty config.
		if _, err := os.Stat(explicit); err != nil {
			return nil, fmt.Errorf("could not load the kubeconfig: %w", err)
		}
	}
	b, err := k.view(ctx, explicit)
	if err != nil {
		return nil, fmt.Errorf("could not load the kubeconfig: %w", err)
	}
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("could not load the kubeconfig: %w", err)
	}
	if user == "" {
		if contextName == "" {
			contextName = c.CurrentContext
		}
		found := false
		for _, x := range c.Contexts {
			if x.Name == contextName {
				user, found = x.Context.User, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("could not find the current auth provider: context %s does not exist", contextName)
		}
	}
	p, err := findUser(c, user)
	if err != nil {
		return nil, fmt.Errorf("could not find the current auth provider: %w", err)
	}
	p.ContextName = contextName
	// The file that defines the user: the first in the list (kubectl's
	// merge keeps the first definition of a name).
	for _, f := range k.files(explicit) {
		if _, err := os.Stat(f); err != nil && explicit == "" {
			continue
		}
		b, err := k.view(ctx, f)
		if err != nil {
			return nil, err
		}
		var fc config
		if err := json.Unmarshal(b, &fc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if _, err := findUser(fc, user); err == nil {
			p.LocationOfOrigin = f
			return p, nil
		}
	}
	return nil, fmt.Errorf("could not find the file that defines user %s", user)
}

func findUser(c config, name string) (*AuthProvider, error) {
	for _, u := range c.Users {
		if u.Name != name {
			continue
		}
		ap := u.User.AuthProvider
		switch {
		case ap == nil:
			return nil, errors.New("auth-provider is missing")
		case ap.Name != "oidc":
			return nil, fmt.Errorf("auth-provider.name must be oidc but is %s", ap.Name)
		case ap.Config == nil:
			return nil, errors.New("auth-provider.config is missing")
		}
		m := ap.Config
		var scopes []string
		if m["extra-scopes"] != "" {
			scopes = strings.Split(m["extra-scopes"], ",")
		}
		return &AuthProvider{
			UserName: name, IDPIssuerURL: m["idp-issuer-url"], ClientID: m["client-id"], ClientSecret: m["client-secret"],
			IDPCertificateAuthority: m["idp-certificate-authority"], IDPCertificateAuthorityData: m["idp-certificate-authority-data"],
			ExtraScopes: scopes, IDToken: m["id-token"], RefreshToken: m["refresh-token"],
		}, nil
	}
	return nil, fmt.Errorf("user %s does not exist", name)
}

// Update writes p's settings and tokens into its user's auth-provider
// config in p.LocationOfOrigin, as kubelogin does: empty values remove
// their key, and the file is written again as a whole.
func (k Kubectl) Update(ctx context.Context, p AuthProvider) error {
	b, err := k.view(ctx, p.LocationOfOrigin)
	if err != nil {
		return fmt.Errorf("could not load %s: %w", p.LocationOfOrigin, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		return fmt.Errorf("could not load %s: %w", p.LocationOfOrigin, err)
	}
	cfg, err := authProviderConfig(doc, p.UserName)
	if err != nil {
		return err
	}
	set := func(key, value string) {
		if value == "" {
			delete(cfg, key)
			return
		}
		cfg[key] = value
	}
	set("idp-issuer-url", p.IDPIssuerURL)
	set("client-id", p.ClientID)
	set("client-secret", p.ClientSecret)
	set("idp-certificate-authority", p.IDPCertificateAuthority)
	set("idp-certificate-authority-data", p.IDPCertificateAuthorityData)
	set("extra-scopes", strings.Join(p.ExtraScopes, ","))
	set("id-token", p.IDToken)
	set("refresh-token", p.RefreshToken)
	var out bytes.Buffer
	writeYAML(&out, doc, 0)
	// In place, like clientcmd: a symbolic link stays one, and a new file
	// is 0600.
	if err := os.WriteFile(p.LocationOfOrigin, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("could not update %s: %w", p.LocationOfOrigin, err)
	}
	return nil
}

// authProviderConfig returns the config map of user's oidc auth-provider
// in a decoded kubeconfig (created if missing).
func authProviderConfig(doc map[string]any, user string) (map[string]any, error) {
	users, _ := doc["users"].([]any)
	for _, x := range users {
		u, _ := x.(map[string]any)
		if u == nil || u["name"] != user {
			continue
		}
		ui, _ := u["user"].(map[string]any)
		ap, _ := ui["auth-provider"].(map[string]any)
		if ap == nil {
			return nil, errors.New("auth-provider is missing")
		}
		if ap["name"] != "oidc" {
			return nil, fmt.Errorf("auth-provider must be oidc but is %v", ap["name"])
		}
		cfg, _ := ap["config"].(map[string]any)
		if cfg == nil {
			cfg = map[string]any{}
			ap["config"] = cfg
		}
		return cfg, nil
	}
	return nil, fmt.Errorf("user %s does not exist", user)
}
