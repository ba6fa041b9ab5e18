package fakegithub

import (
	"fmt"
	"os"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Fixture is the state of the fake GitHub: who exists, which orgs and teams
// they belong to, and which OAuth Apps or GitHub Apps may log them in. It
// can be written in Go or loaded from YAML or JSON with LoadFixture (keys
// are the json tags below).
type Fixture struct {
	Users []User `json:"users"`
	Orgs  []Org  `json:"orgs"`
	Teams []Team `json:"teams"`
	Apps  []App  `json:"apps"`
}

// User is a GitHub account.
type User struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	// Name is the profile's display name; it may be empty.
	Name string `json:"name,omitempty"`
	// PublicEmail is what GET /user returns as "email" (GitHub only lets a
	// user make one of their verified addresses public). Empty means the
	// user keeps their address private.
	PublicEmail string `json:"publicEmail,omitempty"`
	// Emails is what GET /user/emails lists.
	Emails []Email `json:"emails,omitempty"`
}

// Email is one address of a user, as GET /user/emails shows it.
type Email struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary,omitempty"`
	Verified bool   `json:"verified,omitempty"`
	// Visibility is "public", "private" or empty (null).
	Visibility string `json:"visibility,omitempty"`
}

// Org is a GitHub organization.
type Org struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	Name  string `json:"name,omitempty"`
	// Members are the logins of active members.
	Members []string `json:"members,omitempty"`
	// Admins are active members with the admin (owner) role; they need not
	// be repeated in Members.
	Admins []string `json:"admins,omitempty"`
	// PublicMembers are the members who made their membership public.
	PublicMembers []string `json:"publicMembers,omitempty"`
	// Pending are logins invited but not yet accepted: they are not members.
	Pending []string `json:"pending,omitempty"`
}

// Team is a team of an organization.
type Team struct {
	ID   int64  `json:"id"`
	Org  string `json:"org"`
	Name string `json:"name"`
	// Slug defaults to the name lower-cased with spaces as dashes.
	Slug string `json:"slug,omitempty"`
	// Parent is the slug of the parent team in the same org, if any.
	Parent string `json:"parent,omitempty"`
	// Privacy is "closed" (visible to all org members, the default) or
	// "secret" (visible to its members and org admins only).
	Privacy     string   `json:"privacy,omitempty"`
	Description string   `json:"description,omitempty"`
	Members     []string `json:"members,omitempty"`
}

// App is an OAuth client registered at the fake: an OAuth App (tokens do
// not expire, scopes apply) or a GitHub App with expiring user tokens
// (access tokens and refresh tokens expire, scopes do not apply).
type App struct {
	ClientID     string `json:"clientID"`
	ClientSecret string `json:"clientSecret"`
	// CallbackURL is the registered authorization callback URL. The
	// redirect_uri of a request must have the same scheme, host and port and
	// a path equal to or below it. Empty accepts any redirect_uri.
	CallbackURL string `json:"callbackURL,omitempty"`
	// GitHubApp makes this a GitHub App issuing expiring user tokens.
	GitHubApp bool `json:"githubApp,omitempty"`
	// AccessTokenTTL and RefreshTokenTTL apply to GitHub Apps; they default
	// to GitHub's 8 hours and 6 months.
	AccessTokenTTL  Duration `json:"accessTokenTTL,omitempty"`
	RefreshTokenTTL Duration `json:"refreshTokenTTL,omitempty"`
}

// Duration is a time.Duration written as "8h" in YAML and JSON.
type Duration time.Duration

// UnmarshalJSON reads "8h30m" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return fmt.Errorf("fakegithub: duration %s: want a string like \"8h\"", b)
	}
	*d = Duration(n)
	return nil
}

// MarshalJSON writes the duration as a string like "8h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// LoadFixture reads a fixture from a YAML or JSON file.
func LoadFixture(path string) (Fixture, error) {
	var f Fixture
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("fakegithub: read fixture: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return f, fmt.Errorf("fakegithub: parse fixture %s: %w", path, err)
	}
	return f, nil
}

// slugify forms a team slug from its name as GitHub does for simple names.
func slugify(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// validate fills defaults and checks references between the parts.
func (f *Fixture) validate() error {
	users := map[string]bool{}
	ids := map[int64]string{}
	for _, u := range f.Users {
		if u.Login == "" || u.ID == 0 {
			return fmt.Errorf("fakegithub: user %+v needs id and login", u)
		}
		if prev, ok := ids[u.ID]; ok {
			return fmt.Errorf("fakegithub: users %s and %s share id %d", prev, u.Login, u.ID)
		}
		ids[u.ID] = u.Login
		users[strings.ToLower(u.Login)] = true
	}
	orgs := map[string]*Org{}
	for i := range f.Orgs {
		o := &f.Orgs[i]
		if o.Login == "" || o.ID == 0 {
			return fmt.Errorf("fakegithub: org %+v needs id and login", *o)
		}
		for _, list := range [][]string{o.Members, o.Admins, o.PublicMembers, o.Pending} {
			for _, m := range list {
				if !users[strings.ToLower(m)] {
					return fmt.Errorf("fakegithub: org %s names unknown user %q", o.Login, m)
				}
			}
		}
		orgs[strings.ToLower(o.Login)] = o
	}
	slugs := map[string]bool{}
	for i := range f.Teams {
		t := &f.Teams[i]
		if t.Slug == "" {
			t.Slug = slugify(t.Name)
		}
		if t.Privacy == "" {
			t.Privacy = "closed"
		}
		o := orgs[strings.ToLower(t.Org)]
		if o == nil || t.ID == 0 || t.Name == "" {
			return fmt.Errorf("fakegithub: team %+v needs id, name and a known org", *t)
		}
		for _, m := range t.Members {
			if !isMember(o, m) {
				return fmt.Errorf("fakegithub: team %s/%s member %q is not an active member of the org", t.Org, t.Slug, m)
			}
		}
		slugs[strings.ToLower(t.Org+"/"+t.Slug)] = true
	}
	for _, t := range f.Teams {
		if t.Parent != "" && !slugs[strings.ToLower(t.Org+"/"+t.Parent)] {
			return fmt.Errorf("fakegithub: team %s/%s has unknown parent %q", t.Org, t.Slug, t.Parent)
		}
	}
	for _, a := range f.Apps {
		if a.ClientID == "" || a.ClientSecret == "" {
			return fmt.Errorf("fakegithub: app %q needs clientID and clientSecret", a.ClientID)
		}
	}
	return nil
}

func contains(list []string, login string) bool {
	for _, m := range list {
		if strings.EqualFold(m, login) {
			return true
		}
	}
	return false
}

func isMember(o *Org, login string) bool {
	return contains(o.Members, login) || contains(o.Admins, login)
}

func (f *Fixture) clone() Fixture {
	c := Fixture{}
	for _, u := range f.Users {
		u.Emails = append([]Email(nil), u.Emails...)
		c.Users = append(c.Users, u)
	}
	for _, o := range f.Orgs {
		o.Members = append([]string(nil), o.Members...)
		o.Admins = append([]string(nil), o.Admins...)
		o.PublicMembers = append([]string(nil), o.PublicMembers...)
		o.Pending = append([]string(nil), o.Pending...)
		c.Orgs = append(c.Orgs, o)
	}
	for _, t := range f.Teams {
		t.Members = append([]string(nil), t.Members...)
		c.Teams = append(c.Teams, t)
	}
	c.Apps = append(c.Apps, f.Apps...)
	return c
}
