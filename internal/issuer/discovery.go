package issuer

import (
	"encoding/json"
	"net/http"
	"strconv"
)

type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	DeviceAuthorizationEndpoint       string   `json:"device_authorization_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	AuthorizationResponseISSSupported bool     `json:"authorization_response_iss_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
}

func (s *Server) discovery() discoveryDoc {
	var grants []string
	for _, g := range SupportedGrantTypes {
		if s.grants[g] {
			grants = append(grants, g)
		}
	}
	pkce := []string{"S256"}
	if s.opts.AllowPlainPKCE {
		pkce = append(pkce, "plain")
	}
	return discoveryDoc{
		Issuer:                            s.opts.Issuer,
		AuthorizationEndpoint:             s.absURL("/auth"),
		TokenEndpoint:                     s.absURL("/token"),
		JWKSURI:                           s.absURL("/keys"),
		UserinfoEndpoint:                  s.absURL("/userinfo"),
		DeviceAuthorizationEndpoint:       s.absURL("/device/code"),
		RevocationEndpoint:                s.absURL("/token/revoke"),
		IntrospectionEndpoint:             s.absURL("/token/introspect"),
		GrantTypesSupported:               grants,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		SubjectTypesSupported:             []string{"public"},
		IDTokenSigningAlgValuesSupported:  []string{s.opts.Keys.Algorithm()},
		CodeChallengeMethodsSupported:     pkce,
		ScopesSupported:                   []string{"openid", "email", "groups", "profile", "offline_access", "federated:id"},
		TokenEndpointAuthMethodsSupported: []string{"client_secret_basic", "client_secret_post", "none"},
		ClaimsSupported: []string{"iss", "sub", "aud", "iat", "exp", "email", "email_verified", "locale", "name",
			"preferred_username", "at_hash", "c_hash", "azp", "nonce", "groups", "auth_time", "federated_claims"},
		PromptValuesSupported:             []string{"none", "login", "consent", "select_account"},
		AuthorizationResponseISSSupported: true,
	}
}

func (s *Server) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.discovery())
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	data, maxAge, err := s.opts.Keys.JWKS(r.Context())
	if err != nil {
		s.log.Error("serving JWKS", "err", err)
		writeOAuthError(w, http.StatusServiceUnavailable, errTemporarilyUnavailable, "signing keys are not available yet")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(maxAge.Seconds()))+", must-revalidate")
	_, _ = w.Write(data)
}
