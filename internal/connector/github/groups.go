package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	gh "github.com/google/go-github/v84/github"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

const (
	perPage = 100 // GitHub's maximum
	// maxPages bounds every listing (10,000 items), so a misbehaving
	// server cannot keep a login looping.
	maxPages = 100
)

// paginate follows GitHub's Link headers (as go-github parses them into
// NextPage) with per_page=100.
func paginate[T any](list func(*gh.ListOptions) ([]T, *gh.Response, error)) ([]T, error) {
	opts := &gh.ListOptions{PerPage: perPage}
	var all []T
	for range maxPages {
		items, resp, err := list(opts)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if resp == nil || resp.NextPage == 0 {
			return all, nil
		}
		opts.Page = resp.NextPage
	}
	return nil, fmt.Errorf("more than %d pages of %d", maxPages, perPage)
}

// email picks the user's address as Dex does: a verified address in
// preferredEmailDomain if configured, else the verified primary one.
// GitHub Enterprise Server has no email verification, so there every
// address counts as verified.
func (c *Connector) email(ctx context.Context, client *gh.Client, login string) (string, error) {
	emails, err := paginate(func(o *gh.ListOptions) ([]*gh.UserEmail, *gh.Response, error) {
		return client.Users.ListEmails(ctx, o)
	})
	if err != nil {
		return "", c.apiError(ctx, "list emails", login, err)
	}
	var primary, preferred string
	for _, e := range emails {
		verified := e.GetVerified() || c.cfg.enterprise
		if verified && e.GetPrimary() {
			primary = e.GetEmail()
		}
		if c.cfg.PreferredEmailDomain != "" && preferred == "" && verified {
			_, domain, ok := strings.Cut(e.GetEmail(), "@")
			if !ok {
				return "", fmt.Errorf("github: user %s has a malformed email address", login)
			}
			if matchDomain(c.cfg.PreferredEmailDomain, domain) {
				preferred = e.GetEmail()
			}
		}
	}
	if preferred != "" {
		return preferred, nil
	}
	if primary != "" {
		return primary, nil
	}
	return "", &connector.UserError{
		Status: http.StatusForbidden, Reason: "no_verified_email",
		Title:       "No verified email address",
		Message:     fmt.Sprintf("Your GitHub account %s has no verified primary email address. Verify one in GitHub's email settings, then log in again.", login),
		Description: "no verified primary email address on GitHub account " + login,
	}
}

// matchDomain matches domain against a pattern in which "*" stands for
// exactly one label ("*.example.com").
func matchDomain(pattern, domain string) bool {
	if strings.EqualFold(pattern, domain) {
		return true
	}
	p, d := strings.Split(pattern, "."), strings.Split(domain, ".")
	if len(p) != len(d) {
		return false
	}
	for i := range p {
		if p[i] != "*" && !strings.EqualFold(p[i], d[i]) {
			return false
		}
	}
	return true
}

// fetcher reads one user's memberships, listing their teams once.
type fetcher struct {
	c      *Connector
	ctx    context.Context
	client *gh.Client
	login  string
	teams  []*gh.Team // nil until listed
	parent map[string]*gh.Team
}

func (c *Connector) groups(ctx context.Context, client *gh.Client, login string, groupsScope bool) ([]string, error) {
	f := &fetcher{c: c, ctx: ctx, client: client, login: login, parent: map[string]*gh.Team{}}
	switch {
	case len(c.cfg.Orgs) > 0:
		return f.forOrgs()
	case c.cfg.Org != "":
		return f.legacyOrg()
	case groupsScope && c.cfg.LoadAllGroups:
		return f.all()
	}
	return nil, nil
}

// forOrgs applies the orgs restriction: a user gets in as a member of an
// org listed without teams, or of a listed team in a listed org. Groups
// are org:team for the user's teams (only the listed ones where teams are
// listed).
func (f *fetcher) forOrgs() ([]string, error) {
	groups := []string{}
	inAnyOrg, inOpenOrg := false, false
	for _, o := range f.c.cfg.Orgs {
		member, err := f.isMember(o.Name)
		if err != nil {
			return nil, err
		}
		if !member {
			continue
		}
		inAnyOrg = true
		teams, err := f.teamsIn(o.Name)
		if err != nil {
			return nil, err
		}
		claims := f.c.claims(teams)
		if len(o.Teams) == 0 {
			inOpenOrg = true
		} else if claims = filter(claims, o.Teams); len(claims) == 0 {
			f.c.logger.InfoContext(f.ctx, "github: user in org but in none of its allowed teams", "user", f.login, "org", o.Name)
		}
		for _, t := range claims {
			groups = appendUnique(groups, o.Name+":"+t)
		}
	}
	if inOpenOrg || len(groups) > 0 {
		return groups, nil
	}
	return nil, f.c.denied(f.login, inAnyOrg)
}

// legacyOrg is Dex's single org key: membership is required (Dex does not
// check it), and groups are the bare team names, as Dex gives them.
func (f *fetcher) legacyOrg() ([]string, error) {
	member, err := f.isMember(f.c.cfg.Org)
	if err != nil {
		return nil, err
	}
	if !member {
		return nil, f.c.denied(f.login, false)
	}
	teams, err := f.teamsIn(f.c.cfg.Org)
	if err != nil {
		return nil, err
	}
	groups := []string{}
	for _, t := range f.c.claims(teams) {
		groups = appendUnique(groups, t)
	}
	return groups, nil
}

// all gives every org of the user and org:team for each of their teams.
func (f *fetcher) all() ([]string, error) {
	orgs, err := paginate(func(o *gh.ListOptions) ([]*gh.Organization, *gh.Response, error) {
		return f.client.Organizations.List(f.ctx, "", o)
	})
	if err != nil {
		return nil, f.c.apiError(f.ctx, "list orgs", f.login, err)
	}
	groups := []string{}
	for _, o := range orgs {
		name := o.GetLogin()
		groups = appendUnique(groups, name)
		teams, err := f.teamsIn(name)
		if err != nil {
			return nil, err
		}
		for _, t := range f.c.claims(teams) {
			groups = appendUnique(groups, name+":"+t)
		}
	}
	return groups, nil
}

// isMember asks GET /orgs/{org}/members/{user}: 204 yes, 404 no, and a
// 302 to the public membership check when GitHub does not show the
// membership to this token (go-github follows it on the same host).
func (f *fetcher) isMember(org string) (bool, error) {
	ok, _, err := f.client.Organizations.IsMember(f.ctx, org, f.login)
	var redirect *gh.RedirectionError
	if errors.As(err, &redirect) {
		f.c.logger.InfoContext(f.ctx, "github: membership check redirected elsewhere; treating as not a member", "user", f.login, "org", org)
		return false, nil
	}
	if err != nil {
		return false, f.c.apiError(f.ctx, "check membership of "+org, f.login, err)
	}
	if !ok {
		f.c.logger.InfoContext(f.ctx, "github: user not in org, or the org has not approved this app", "user", f.login, "org", org)
	}
	return ok, nil
}

// userTeams lists all of the user's teams, once.
func (f *fetcher) userTeams() ([]*gh.Team, error) {
	if f.teams != nil {
		return f.teams, nil
	}
	teams, err := paginate(func(o *gh.ListOptions) ([]*gh.Team, *gh.Response, error) {
		return f.client.Teams.ListUserTeams(f.ctx, o)
	})
	if err != nil {
		return nil, f.c.apiError(f.ctx, "list teams", f.login, err)
	}
	f.teams = append([]*gh.Team{}, teams...)
	return f.teams, nil
}

// teamsIn returns the user's teams in org and, with includeParentTeams,
// all their ancestors.
func (f *fetcher) teamsIn(org string) ([]*gh.Team, error) {
	all, err := f.userTeams()
	if err != nil {
		return nil, err
	}
	var teams []*gh.Team
	for _, t := range all {
		if strings.EqualFold(t.GetOrganization().GetLogin(), org) {
			teams = append(teams, t)
		}
	}
	if !f.c.cfg.IncludeParentTeams {
		return teams, nil
	}
	return f.withAncestors(org, teams)
}

// withAncestors appends the parent of every team, walking up the tree.
// A parent's own parent is known when the user is also in that team;
// otherwise GET /orgs/{org}/teams/{slug} tells it (once per team).
func (f *fetcher) withAncestors(org string, teams []*gh.Team) ([]*gh.Team, error) {
	known := map[string]*gh.Team{}
	seen := map[string]bool{}
	for _, t := range teams {
		known[strings.ToLower(t.GetSlug())] = t
		seen[strings.ToLower(t.GetSlug())] = true
	}
	out := slices.Clone(teams)
	for i := 0; i < len(out); i++ {
		p := out[i].GetParent()
		if p == nil {
			continue
		}
		slug := strings.ToLower(p.GetSlug())
		if seen[slug] {
			continue
		}
		seen[slug] = true
		full := known[slug]
		if full == nil {
			key := strings.ToLower(org) + "/" + slug
			full = f.parent[key]
			if full == nil {
				t, _, err := f.client.Teams.GetTeamBySlug(f.ctx, org, p.GetSlug())
				var er *gh.ErrorResponse
				switch {
				case errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound:
					f.c.logger.InfoContext(f.ctx, "github: parent team not visible; not walking further up", "org", org, "team", p.GetSlug())
					t = p
					t.Parent = nil
				case err != nil:
					return nil, f.c.apiError(f.ctx, "get team "+org+"/"+p.GetSlug(), f.login, err)
				}
				full = t
				f.parent[key] = full
			}
		}
		out = append(out, full)
	}
	return out, nil
}

// claims names teams by teamNameField: name, slug, or both.
func (c *Connector) claims(teams []*gh.Team) []string {
	var out []string
	for _, t := range teams {
		switch c.cfg.TeamNameField {
		case "both":
			out = append(out, t.GetName(), t.GetSlug())
		case "slug":
			out = append(out, t.GetSlug())
		default:
			out = append(out, t.GetName())
		}
	}
	return out
}

// filter keeps the claims listed in allowed (exact match, as Dex).
func filter(claims, allowed []string) []string {
	var out []string
	for _, c := range claims {
		if slices.Contains(allowed, c) {
			out = append(out, c)
		}
	}
	return out
}

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
