package fakegithub

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	docsRateLimit = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
	// DocsSecondaryRateLimit is the documentation_url GitHub sends with a
	// secondary rate limit; clients (go-github) recognise it by its suffix.
	DocsSecondaryRateLimit = docsRateLimit + "#about-secondary-rate-limits"
	unauthenticatedLimit   = 60
)

type rateState struct {
	used  int
	reset time.Time
}

type secondaryLimit struct {
	status     int
	retryAfter time.Duration
}

// rate returns the window of a user (id 0: unauthenticated), starting a
// new hour when the last one ended. s.mu must be held.
func (s *Server) rate(id int64) *rateState {
	now := s.opts.Now()
	r := s.rates[id]
	if r == nil {
		r = &rateState{}
		s.rates[id] = r
	}
	if r.reset.IsZero() || !now.Before(r.reset) {
		r.used = 0
		r.reset = now.Add(time.Hour).Truncate(time.Second)
	}
	return r
}

func setRateHeaders(h http.Header, limit int, r *rateState) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(limit-r.used, 0)))
	h.Set("X-RateLimit-Used", strconv.Itoa(r.used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(r.reset.Unix(), 10))
	h.Set("X-RateLimit-Resource", "core")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeMessage(w http.ResponseWriter, status int, msg, docs string) {
	body := map[string]string{"message": msg, "documentation_url": docs}
	if status == http.StatusUnauthorized || status == http.StatusForbidden {
		body["status"] = strconv.Itoa(status)
	}
	writeJSON(w, status, body)
}

func notFound(w http.ResponseWriter) {
	writeMessage(w, http.StatusNotFound, "Not Found", "https://docs.github.com/rest")
}

// bearer extracts the token from "Authorization: Bearer X" or "token X".
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || tok == "" {
		return "", false
	}
	switch strings.ToLower(scheme) {
	case "bearer", "token":
		return strings.TrimSpace(tok), true
	}
	return "", false
}

// api wraps an endpoint: it checks the token, counts it against the
// user's rate limit, sets X-RateLimit-* headers, applies secondary limits
// and checks OAuth scopes (any of scopes).
func (s *Server) api(scopes []string, h func(http.ResponseWriter, *http.Request, *User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-GitHub-Media-Type", "github.v3; format=json")
		s.mu.Lock()
		now := s.opts.Now()
		value, hasAuth := bearer(r)
		tok := s.tokens[value]
		if !hasAuth || tok == nil || !tok.usable(now) || s.user(tok.login) == nil {
			setRateHeaders(w.Header(), unauthenticatedLimit, s.rate(0))
			s.mu.Unlock()
			if !hasAuth {
				writeMessage(w, http.StatusUnauthorized, "Requires authentication", "https://docs.github.com/rest")
			} else {
				writeMessage(w, http.StatusUnauthorized, "Bad credentials", "https://docs.github.com/rest")
			}
			return
		}
		u := *s.user(tok.login)
		rs := s.rate(u.ID)
		limit := s.opts.RateLimit
		if sec := s.secondary; sec != nil {
			setRateHeaders(w.Header(), limit, rs)
			s.mu.Unlock()
			w.Header().Set("Retry-After", strconv.Itoa(int((sec.retryAfter+time.Second-1)/time.Second)))
			writeMessage(w, sec.status, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.", DocsSecondaryRateLimit)
			return
		}
		if rs.used >= limit {
			setRateHeaders(w.Header(), limit, rs)
			status := s.opts.RateLimitStatus
			s.mu.Unlock()
			writeMessage(w, status, fmt.Sprintf("API rate limit exceeded for user ID %d. If you reach out to GitHub Support for help, please include the request ID.", u.ID), docsRateLimit+"#about-the-primary-rate-limit")
			return
		}
		rs.used++
		setRateHeaders(w.Header(), limit, rs)
		if !tok.githubApp {
			w.Header().Set("X-OAuth-Scopes", strings.Join(tok.scopes, ", "))
			w.Header().Set("X-Accepted-OAuth-Scopes", strings.Join(scopes, ", "))
		}
		allowed := tok.hasScope(scopes)
		s.mu.Unlock()
		if !allowed {
			// GitHub answers 404, not 403, when a token may not see a resource.
			notFound(w)
			return
		}
		h(w, r, &u)
	}
}

// rateLimitStatus is GET /rate_limit, which does not count against the limit.
func (s *Server) rateLimitStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	value, _ := bearer(r)
	limit, id := unauthenticatedLimit, int64(0)
	if tok := s.tokens[value]; tok != nil && tok.usable(s.opts.Now()) {
		if u := s.user(tok.login); u != nil {
			limit, id = s.opts.RateLimit, u.ID
		}
	}
	rs := s.rate(id)
	setRateHeaders(w.Header(), limit, rs)
	core := map[string]any{"limit": limit, "remaining": max(limit-rs.used, 0), "used": rs.used, "reset": rs.reset.Unix()}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"resources": map[string]any{"core": core}, "rate": core})
}

// page applies GitHub's pagination to n items: per_page defaults to 30 and
// is capped at 100, page starts at 1, and a Link header names the next,
// last, first and prev pages. It returns the slice bounds to send.
func (s *Server) page(w http.ResponseWriter, r *http.Request, n int) (int, int) {
	q := r.URL.Query()
	per, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || per < 1 {
		per = 30
	}
	per = min(per, 100)
	pg, err := strconv.Atoi(q.Get("page"))
	if err != nil || pg < 1 {
		pg = 1
	}
	last := max((n+per-1)/per, 1)
	link := func(p int, rel string) string {
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = v
		}
		q2.Set("page", strconv.Itoa(p))
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawQuery: q2.Encode()}
		if r.TLS != nil {
			u.Scheme = "https"
		}
		return fmt.Sprintf("<%s>; rel=%q", u.String(), rel)
	}
	var links []string
	if pg > 1 {
		links = append(links, link(min(pg-1, last), "prev"))
	}
	if pg < last {
		links = append(links, link(pg+1, "next"), link(last, "last"))
	}
	if pg > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	start := min((pg-1)*per, n)
	return start, min(start+per, n)
}

func (s *Server) userJSON(u *User, private bool) map[string]any {
	m := map[string]any{
		"login": u.Login, "id": u.ID, "node_id": fmt.Sprintf("U_%d", u.ID),
		"avatar_url": s.URL + "/avatars/u/" + strconv.FormatInt(u.ID, 10),
		"url":        s.APIURL + "/users/" + u.Login, "html_url": s.URL + "/" + u.Login,
		"type": "User", "site_admin": false,
	}
	if private {
		m["name"] = nullable(u.Name)
		m["email"] = nullable(u.PublicEmail)
	}
	return m
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) orgJSON(o *Org) map[string]any {
	base := s.APIURL + "/orgs/" + o.Login
	return map[string]any{
		"login": o.Login, "id": o.ID, "node_id": fmt.Sprintf("O_%d", o.ID),
		"url": base, "repos_url": base + "/repos", "members_url": base + "/members{/member}",
		"public_members_url": base + "/public_members{/member}", "description": nil,
	}
}

// teamJSON renders a team; full adds organization and parent. s.mu held.
func (s *Server) teamJSON(t *Team, full bool) map[string]any {
	m := map[string]any{
		"id": t.ID, "node_id": fmt.Sprintf("T_%d", t.ID), "name": t.Name, "slug": t.Slug,
		"description": nullable(t.Description), "privacy": t.Privacy, "permission": "pull",
		"url":      fmt.Sprintf("%s/organizations/%d/team/%d", s.APIURL, s.org(t.Org).ID, t.ID),
		"html_url": fmt.Sprintf("%s/orgs/%s/teams/%s", s.URL, t.Org, t.Slug),
	}
	if full {
		m["parent"] = nil
		if t.Parent != "" {
			if p := s.team(t.Org, t.Parent); p != nil {
				m["parent"] = s.teamJSON(p, false)
			}
		}
		m["organization"] = s.orgJSON(s.org(t.Org))
		m["members_count"] = len(t.Members)
	}
	return m
}

// visible says whether login may see team t (closed teams: any org
// member; secret teams: its members and org admins). s.mu held.
func (s *Server) visible(t *Team, login string) bool {
	o := s.org(t.Org)
	if !isMember(o, login) {
		return false
	}
	return t.Privacy != "secret" || contains(t.Members, login) || contains(o.Admins, login)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, u *User) {
	writeJSON(w, http.StatusOK, s.userJSON(u, true))
}

func (s *Server) listEmails(w http.ResponseWriter, r *http.Request, u *User) {
	var all []map[string]any
	for _, e := range u.Emails {
		all = append(all, map[string]any{"email": e.Email, "primary": e.Primary, "verified": e.Verified, "visibility": nullable(e.Visibility)})
	}
	lo, hi := s.page(w, r, len(all))
	writeJSON(w, http.StatusOK, nonNil(all[lo:hi]))
}

func (s *Server) listUserOrgs(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	var all []map[string]any
	for i := range s.fx.Orgs {
		if isMember(&s.fx.Orgs[i], u.Login) {
			all = append(all, s.orgJSON(&s.fx.Orgs[i]))
		}
	}
	s.mu.Unlock()
	lo, hi := s.page(w, r, len(all))
	writeJSON(w, http.StatusOK, nonNil(all[lo:hi]))
}

func (s *Server) listUserTeams(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	var all []map[string]any
	for i := range s.fx.Teams {
		if contains(s.fx.Teams[i].Members, u.Login) {
			all = append(all, s.teamJSON(&s.fx.Teams[i], true))
		}
	}
	s.mu.Unlock()
	lo, hi := s.page(w, r, len(all))
	writeJSON(w, http.StatusOK, nonNil(all[lo:hi]))
}

func (s *Server) getMembership(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.org(r.PathValue("org"))
	if o == nil {
		notFound(w)
		return
	}
	state, role := "", "member"
	switch {
	case contains(o.Admins, u.Login):
		state, role = "active", "admin"
	case contains(o.Members, u.Login):
		state = "active"
	case contains(o.Pending, u.Login):
		state = "pending"
	default:
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"url":   s.APIURL + "/orgs/" + o.Login + "/memberships/" + u.Login,
		"state": state, "role": role,
		"organization_url": s.APIURL + "/orgs/" + o.Login,
		"organization":     s.orgJSON(o), "user": s.userJSON(u, false),
	})
}

// checkMember is GET /orgs/{org}/members/{username}: 204 if a member, 404
// if not, and 302 to the public membership check when the requester is not
// a member of the org.
func (s *Server) checkMember(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	o := s.org(r.PathValue("org"))
	var requesterIn, targetIn bool
	if o != nil {
		requesterIn, targetIn = isMember(o, u.Login), isMember(o, r.PathValue("username"))
	}
	s.mu.Unlock()
	switch {
	case o == nil:
		notFound(w)
	case !requesterIn:
		w.Header().Set("Location", s.APIURL+"/orgs/"+o.Login+"/public_members/"+r.PathValue("username"))
		w.WriteHeader(http.StatusFound)
	case targetIn:
		w.WriteHeader(http.StatusNoContent)
	default:
		notFound(w)
	}
}

func (s *Server) checkPublicMember(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	o := s.org(r.PathValue("org"))
	ok := o != nil && isMember(o, r.PathValue("username")) && contains(o.PublicMembers, r.PathValue("username"))
	s.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	notFound(w)
}

func (s *Server) listOrgTeams(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	o := s.org(r.PathValue("org"))
	if o == nil || !isMember(o, u.Login) {
		s.mu.Unlock()
		notFound(w)
		return
	}
	var all []map[string]any
	for i := range s.fx.Teams {
		t := &s.fx.Teams[i]
		if strings.EqualFold(t.Org, o.Login) && s.visible(t, u.Login) {
			m := s.teamJSON(t, false)
			m["parent"] = nil
			if p := s.team(t.Org, t.Parent); p != nil {
				m["parent"] = s.teamJSON(p, false)
			}
			all = append(all, m)
		}
	}
	s.mu.Unlock()
	lo, hi := s.page(w, r, len(all))
	writeJSON(w, http.StatusOK, nonNil(all[lo:hi]))
}

func (s *Server) getTeam(w http.ResponseWriter, r *http.Request, u *User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.team(r.PathValue("org"), r.PathValue("slug"))
	if t == nil || !s.visible(t, u.Login) {
		notFound(w)
		return
	}
	writeJSON(w, http.StatusOK, s.teamJSON(t, true))
}

func nonNil(l []map[string]any) []map[string]any {
	if l == nil {
		return []map[string]any{}
	}
	return l
}
