package github

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// DefaultGroupsRefreshInterval is how often, at most, Refresh asks GitHub
// again for a session's groups when groupsRefreshInterval is not set.
const DefaultGroupsRefreshInterval = 5 * time.Minute

// Config is the connector's `config` block. The keys are Dex's github
// connector keys, with the same meaning, plus three gatehouse extensions
// (includeParentTeams, groupsRefreshInterval, showRequiredGroups).
type Config struct {
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// RedirectURI is the issuer's callback, https://<issuer>/callback.
	RedirectURI string `json:"redirectURI"`
	// Org is Dex's legacy single organization: only its members may log
	// in, and their groups are the bare names of their teams in it.
	Org string `json:"org,omitempty"`
	// Orgs restricts logins to members of these organizations (and, when
	// an entry lists teams, of one of those teams); groups are org:team.
	Orgs []Org `json:"orgs,omitempty"`
	// HostName is a GitHub Enterprise Server host (no scheme, no path):
	// OAuth at https://HOST/login/oauth, REST at https://HOST/api/v3.
	HostName string `json:"hostName,omitempty"`
	// RootCA is a PEM file of CAs to trust for HostName.
	RootCA string `json:"rootCA,omitempty"`
	// TeamNameField is "name" (default), "slug", or "both" (two groups per team).
	TeamNameField string `json:"teamNameField,omitempty"`
	// LoadAllGroups, without orgs, gives every org and org:team of the user
	// as groups when the client asks for the groups scope.
	LoadAllGroups bool `json:"loadAllGroups,omitempty"`
	// UseLoginAsID makes the user ID the login instead of the numeric id.
	UseLoginAsID bool `json:"useLoginAsID,omitempty"`
	// PreferredEmailDomain picks a verified address in this domain ("*" may
	// stand for one label, as in "*.example.com") over the primary one.
	PreferredEmailDomain string `json:"preferredEmailDomain,omitempty"`

	// IncludeParentTeams adds every ancestor of each of the user's teams,
	// as GitHub counts members of a child team as members of its parents.
	IncludeParentTeams bool `json:"includeParentTeams,omitempty"`
	// GroupsRefreshInterval bounds how often Refresh asks GitHub again for
	// one session (a Go duration such as "5m"; "0s" means every refresh).
	GroupsRefreshInterval string `json:"groupsRefreshInterval,omitempty"`
	// ShowRequiredGroups lets the denial page name the orgs and teams that
	// would have let the user in.
	ShowRequiredGroups bool `json:"showRequiredGroups,omitempty"`
}

// Org is one allowed organization and, optionally, the teams in it whose
// members may log in.
type Org struct {
	Name  string   `json:"name"`
	Teams []string `json:"teams,omitempty"`
}

// Decode reads a connector's config block (JSON, as sigs.k8s.io/yaml
// turns YAML into) strictly: a key this connector does not know is an
// error that names it, never silently ignored.
func Decode(raw []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("github connector: config: %w", err)
	}
	return c, nil
}

// settings is a validated Config.
type settings struct {
	Config
	refreshInterval time.Duration
	webURL          string // OAuth host root, no trailing slash
	apiURL          string // REST base, with trailing slash
	enterprise      bool
	roots           *x509.CertPool
}

func configError(key, format string, args ...any) error {
	return fmt.Errorf("github connector: %s: %s", key, fmt.Sprintf(format, args...))
}

// validate checks c and derives the settings; errors name the key.
func (c Config) validate() (*settings, error) {
	s := &settings{Config: c, refreshInterval: DefaultGroupsRefreshInterval,
		webURL: "https://github.com", apiURL: "https://api.github.com/"}
	if c.ClientID == "" {
		return nil, configError("clientID", "required")
	}
	if c.ClientSecret == "" {
		return nil, configError("clientSecret", "required")
	}
	if c.RedirectURI == "" {
		return nil, configError("redirectURI", "required (https://<issuer>/callback)")
	}
	if u, err := url.Parse(c.RedirectURI); err != nil || !u.IsAbs() || u.Host == "" {
		return nil, configError("redirectURI", "%q is not an absolute URL", c.RedirectURI)
	}
	if c.Org != "" && len(c.Orgs) > 0 {
		return nil, configError("org", "cannot be used together with orgs; move it into orgs")
	}
	for i, o := range c.Orgs {
		if strings.TrimSpace(o.Name) == "" {
			return nil, configError(fmt.Sprintf("orgs[%d].name", i), "required")
		}
		for j, t := range o.Teams {
			if strings.TrimSpace(t) == "" {
				return nil, configError(fmt.Sprintf("orgs[%d].teams[%d]", i, j), "empty team name")
			}
		}
	}
	if c.HostName != "" {
		if strings.ContainsAny(c.HostName, "/?#@ ") {
			return nil, configError("hostName", "%q must be a host name (and optional port), without scheme or path", c.HostName)
		}
		s.enterprise = true
		s.webURL = "https://" + c.HostName
		s.apiURL = "https://" + c.HostName + "/api/v3/"
	}
	if c.RootCA != "" {
		if c.HostName == "" {
			return nil, configError("rootCA", "needs hostName (it is for GitHub Enterprise Server)")
		}
		pem, err := os.ReadFile(c.RootCA)
		if err != nil {
			return nil, configError("rootCA", "%v", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, configError("rootCA", "no PEM certificate in %s", c.RootCA)
		}
		s.roots = pool
	}
	switch c.TeamNameField {
	case "", "name", "slug", "both":
	default:
		return nil, configError("teamNameField", "unsupported value %q (want name, slug or both)", c.TeamNameField)
	}
	if strings.HasSuffix(c.PreferredEmailDomain, "*") {
		return nil, configError("preferredEmailDomain", "%q: a pattern cannot end with \"*\"", c.PreferredEmailDomain)
	}
	if c.GroupsRefreshInterval != "" {
		d, err := time.ParseDuration(c.GroupsRefreshInterval)
		if err != nil || d < 0 {
			return nil, configError("groupsRefreshInterval", "%q is not a non-negative duration such as \"5m\"", c.GroupsRefreshInterval)
		}
		s.refreshInterval = d
	}
	return s, nil
}

// groupsRequired says whether groups (and the read:org scope) are needed:
// when orgs restrict who logs in, or the client asked for groups.
func (s *settings) groupsRequired(groupsScope bool) bool {
	return len(s.Orgs) > 0 || s.Org != "" || groupsScope
}
