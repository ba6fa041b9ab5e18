package oidc

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
)

// mapClaims turns the upstream's claims into an identity the way Dex's oidc
// connector does for the same claims and keys. The one difference: an
// email the provider marks unverified (email_verified: false) is refused
// unless insecureSkipEmailVerified is set, where Dex lets it through.
func (s *settings) mapClaims(claims map[string]any) (connector.Identity, error) {
	var id connector.Identity

	sub, ok := claims["sub"].(string)
	if !ok || sub == "" {
		return id, fmt.Errorf("oidc: the provider's claims have no \"sub\"")
	}
	id.UserID = sub
	if s.userIDKey != DefaultUserIDKey {
		v, ok := claims[s.userIDKey].(string)
		if !ok || v == "" {
			return id, fmt.Errorf("oidc: the provider's claims have no string %q (userIDKey)", s.userIDKey)
		}
		id.UserID = v
	}

	name, ok := claims[s.userNameKey].(string)
	if !ok {
		return id, fmt.Errorf("oidc: the provider's claims have no string %q (userNameKey); set userNameKey to a claim it sends, or request the profile scope", s.userNameKey)
	}
	id.Username = name

	id.PreferredUsername, ok = claims["preferred_username"].(string)
	if (!ok || s.overrideMapping) && s.mapping.PreferredUsername != "" {
		id.PreferredUsername, _ = claims[s.mapping.PreferredUsername].(string)
	}

	emailKey := "email"
	email, found := claims[emailKey].(string)
	if (!found || s.overrideMapping) && s.mapping.Email != "" {
		emailKey = s.mapping.Email
		email, found = claims[emailKey].(string)
	}
	hasEmailScope := slices.Contains(s.scopes, "email")
	if !found && hasEmailScope {
		return id, fmt.Errorf("oidc: the provider's claims have no string %q although the email scope was requested (claimMapping.email names another claim)", emailKey)
	}
	id.Email = email

	verified, found := claims["email_verified"].(bool)
	switch {
	case found && !verified && email != "" && !s.skipEmailVerified:
		return id, &connector.UserError{
			Status: http.StatusForbidden, Reason: "email_not_verified",
			Title:       "Email address not verified",
			Message:     "Your identity provider says the email address " + email + " is not verified. Verify it there, then log in again.",
			Description: "email address " + email + " is not verified at the identity provider",
			Err:         fmt.Errorf("oidc: email_verified is false for %q (insecureSkipEmailVerified is off)", email),
		}
	case !found && s.skipEmailVerified:
		verified = true
	case !found && hasEmailScope:
		return id, fmt.Errorf("oidc: the provider's claims have no boolean \"email_verified\"; set insecureSkipEmailVerified: true if the provider never sends it")
	}
	id.EmailVerified = verified

	if s.enableGroups {
		groups, err := s.groups(claims)
		if err != nil {
			return id, err
		}
		if len(s.allowedGroups) > 0 {
			var kept []string
			for _, g := range groups {
				if slices.Contains(s.allowedGroups, g) {
					kept = append(kept, g)
				}
			}
			if len(kept) == 0 {
				return id, &connector.UserError{
					Status: http.StatusForbidden, Reason: "not_in_allowed_groups",
					Title:       "Not a member of an allowed group",
					Message:     "Your account is not in any group allowed to log in here. Ask your administrator for access.",
					Description: "not in a group allowed to log in",
					Err:         fmt.Errorf("oidc: user %q is in none of allowedGroups", id.UserID),
				}
			}
			groups = kept
		}
		id.Groups = groups
	}
	if s.groupPrefix != "" || s.groupSuffix != "" {
		for i, g := range id.Groups {
			id.Groups[i] = s.groupPrefix + g + s.groupSuffix
		}
	}
	for _, ng := range s.newGroups {
		parts := []string{ng.Prefix}
		for _, claim := range ng.Claims {
			v, ok := claims[claim].(string)
			if !ok {
				continue // as Dex: only string claims take part
			}
			if ng.ClearDelimiter {
				v = strings.ReplaceAll(v, ng.Delimiter, "")
			}
			parts = append(parts, v)
		}
		if len(parts) > 1 {
			id.Groups = append(id.Groups, strings.Join(parts, ng.Delimiter))
		}
	}
	return id, nil
}

// groups reads the groups claim (or claimMapping.groups) as Dex does: a
// list of strings, a list of objects with a "name", or a single string.
func (s *settings) groups(claims map[string]any) ([]string, error) {
	key := "groups"
	list, found := claims[key].([]any)
	if (!found || s.overrideMapping) && s.mapping.Groups != "" {
		key = s.mapping.Groups
		list, found = claims[key].([]any)
	}
	var groups []string
	if g, ok := claims[key].(string); ok {
		groups = []string{g}
	}
	if !found {
		return groups, nil
	}
	for _, v := range list {
		switch g := v.(type) {
		case string:
			if s.keepGroup(g) {
				groups = append(groups, g)
			}
		case map[string]any:
			if name, ok := g["name"].(string); ok && s.keepGroup(name) {
				groups = append(groups, name)
			}
		default:
			return nil, fmt.Errorf("oidc: malformed %q claim: an element is %T, not a string or an object with a name", key, v)
		}
	}
	return groups, nil
}

func (s *settings) keepGroup(g string) bool {
	return s.groupsFilter == nil || s.groupsFilter.MatchString(g)
}
