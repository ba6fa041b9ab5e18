package options

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// Exchange holds get-token's token exchange flags (RFC 8693), a gatehouse
// extension: kubelogin v1.36.3 has no token exchange (its nearest, an
// `audience` extra authorization parameter, asks the issuer for an access
// token audience at each browser login).
type Exchange struct {
	// Audience is the client ID of the cluster the token is for: log in
	// (or refresh) once per issuer, then exchange the ID token for one
	// whose aud is this client ID; one cached token per audience.
	Audience string
	// SubjectTokenSource is where a CI job's own token comes from:
	// github-actions, file:PATH or env:NAME. Set, get-token never opens a
	// browser: it exchanges that token through ConnectorID.
	SubjectTokenSource string
	// ConnectorID names the issuer's connector that verifies the subject
	// token (Dex's connector_id).
	ConnectorID string
	// SubjectTokenAudience is the audience asked of GitHub Actions for the
	// job's token: the one the connector expects.
	SubjectTokenAudience string
}

// Subject token sources (--subject-token-source).
const (
	SourceGitHubActions = "github-actions"
	sourceFile          = "file:"
	sourceEnv           = "env:"
)

// GitHub Actions' variables for a job's OIDC token (present only with
// `permissions: id-token: write`).
const (
	EnvActionsRequestURL   = "ACTIONS_ID_TOKEN_REQUEST_URL"
	EnvActionsRequestToken = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
)

func (x *Exchange) add(f *pflag.FlagSet) {
	f.StringVar(&x.Audience, "exchange-audience", "", "[gatehouse] Client ID of the cluster: exchange the login's ID token for one with this audience (one login per issuer, one cached token per cluster)")
	f.StringVar(&x.SubjectTokenSource, "subject-token-source", "", "[gatehouse, CI] Exchange this job's own token instead of logging in: github-actions, file:PATH or env:NAME (never opens a browser)")
	f.StringVar(&x.ConnectorID, "connector-id", "", "[gatehouse, CI] The issuer's connector that verifies the subject token")
	f.StringVar(&x.SubjectTokenAudience, "subject-token-audience", "", "[gatehouse, CI] With github-actions: the audience to ask GitHub for (the one the connector expects)")
}

// validate checks the exchange flags against the login's.
func (x *Exchange) validate(o *Flags) error {
	if x.SubjectTokenSource == "" {
		switch {
		case x.ConnectorID != "":
			return errors.New("--connector-id is for CI token exchange: also set --subject-token-source (github-actions, file:PATH or env:NAME)")
		case x.SubjectTokenAudience != "":
			return errors.New("--subject-token-audience is for --subject-token-source=github-actions")
		}
	} else {
		if _, _, err := x.Source(); err != nil {
			return err
		}
		if x.ConnectorID == "" {
			return errors.New("--subject-token-source needs --connector-id: the issuer's connector that verifies the job's token (see docs/ci.md)")
		}
		if x.SubjectTokenAudience != "" && x.SubjectTokenSource != SourceGitHubActions {
			return errors.New("--subject-token-audience is for --subject-token-source=github-actions (a file or variable holds a token already issued)")
		}
		if o.GrantType != "auto" || o.Username != "" || o.Password != "" {
			return errors.New("--subject-token-source replaces the login: leave out --grant-type, --username and --password")
		}
	}
	if (x.Audience != "" || x.SubjectTokenSource != "") && o.UseAccessToken {
		return errors.New("--oidc-use-access-token cannot be used with token exchange: the exchanged token is an ID token")
	}
	return nil
}

// Source parses --subject-token-source into its kind (github-actions,
// file or env) and argument (the path or the variable's name).
func (x *Exchange) Source() (kind, arg string, err error) {
	s := x.SubjectTokenSource
	switch {
	case s == SourceGitHubActions:
		return s, "", nil
	case strings.HasPrefix(s, sourceFile) && len(s) > len(sourceFile):
		return "file", tokencache.ExpandHome(s[len(sourceFile):]), nil
	case strings.HasPrefix(s, sourceEnv) && len(s) > len(sourceEnv):
		return "env", s[len(sourceEnv):], nil
	}
	return "", "", fmt.Errorf("--subject-token-source=%q: must be github-actions, file:PATH or env:NAME", s)
}

// TokenKey is the cache key of the token get-token prints: Key() when
// nothing is exchanged (kubelogin's name), else Key() with the exchange
// part. For a CI subject token, the part names the job's token without a
// network request: the digest of GitHub's per-job request token, or of
// the file's or variable's token. So a runner that serves several jobs or
// repositories (a self-hosted runner, one HOME) never hands one job's
// cached token to another. getenv reads the environment.
func (o *Flags) TokenKey(getenv func(string) string) (tokencache.Key, error) {
	k := o.Key()
	x := o.Exchange
	if x.Audience == "" && x.SubjectTokenSource == "" {
		return k, nil
	}
	k.Exchange = tokencache.Exchange{Audience: x.Audience, ConnectorID: x.ConnectorID}
	if x.SubjectTokenSource != "" {
		material, err := x.subjectMaterial(getenv)
		if err != nil {
			return tokencache.Key{}, err
		}
		sum := sha256.Sum256([]byte(x.SubjectTokenSource + "\x00" + x.SubjectTokenAudience + "\x00" + material))
		k.Exchange.Subject = hex.EncodeToString(sum[:])
	}
	return k, nil
}

// subjectMaterial is what identifies the subject token without fetching
// it: GitHub's request token (one per job), or the token itself.
func (x *Exchange) subjectMaterial(getenv func(string) string) (string, error) {
	kind, arg, err := x.Source()
	if err != nil {
		return "", err
	}
	switch kind {
	case SourceGitHubActions:
		u, t := getenv(EnvActionsRequestURL), getenv(EnvActionsRequestToken)
		if u == "" || t == "" {
			return "", errors.New("--subject-token-source=github-actions: " + EnvActionsRequestURL + " and " + EnvActionsRequestToken +
				" are not set: give the workflow (or job) `permissions: id-token: write`, and run get-token inside the job's steps")
		}
		return u + "\x00" + t, nil
	case "file":
		b, err := os.ReadFile(arg)
		if err != nil {
			return "", fmt.Errorf("--subject-token-source=file:%s: %w", arg, err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("--subject-token-source=file:%s: the file is empty: write the job's token into it", arg)
		}
		return t, nil
	default:
		t := strings.TrimSpace(getenv(arg))
		if t == "" {
			return "", fmt.Errorf("--subject-token-source=env:%s: the variable %s is not set or empty: export the job's token in it", arg, arg)
		}
		return t, nil
	}
}

// SubjectToken reads a file or env source's token (the same value
// TokenKey digests). github-actions needs a request: see flow.Subject.
func (x *Exchange) SubjectToken(getenv func(string) string) (string, error) {
	if x.SubjectTokenSource == SourceGitHubActions {
		return "", errors.New("github-actions tokens are requested, not read")
	}
	return x.subjectMaterial(getenv)
}
