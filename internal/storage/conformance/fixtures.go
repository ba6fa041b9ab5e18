package conformance

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// ts is a fixed instant at microsecond precision (the stored precision),
// offset by d.
func ts(d time.Duration) time.Time {
	return time.Date(2026, 3, 1, 12, 30, 45, 123456000, time.UTC).Add(d)
}

// future is an expiry that has not passed, at stored precision.
func future() time.Time { return time.Now().UTC().Add(time.Hour).Truncate(time.Microsecond) }

// past is an expiry that has passed.
func past() time.Time { return time.Now().UTC().Add(-time.Minute).Truncate(time.Microsecond) }

func claims(user string) storage.Claims {
	return storage.Claims{
		UserID: user, Username: "Name of " + user, PreferredUsername: user + "-login",
		Email: user + "@example.com", EmailVerified: true,
		// Not sorted: order must be kept.
		Groups: []string{"org:zeta", "org:alpha", "org:mid", "org:alpha-2"},
	}
}

func authRequest(id string, expiry time.Time) storage.AuthRequest {
	return storage.AuthRequest{
		ID: id, ClientID: "kubernetes", ResponseTypes: []string{"code", "id_token"},
		Scopes: []string{"openid", "groups", "offline_access"}, RedirectURI: "http://localhost:8000/callback",
		Nonce: "nonce-" + id, State: "state-" + id,
		PKCE:   storage.PKCE{CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", CodeChallengeMethod: "S256"},
		Prompt: "login consent", MaxAge: 3600, HMACKey: []byte{0, 1, 2, 0xfe, 0xff},
		ConnectorID: "github", ConnectorData: []byte(`{"state":"x"}`), LoggedIn: true,
		Claims: claims("u-" + id), AuthTime: ts(-time.Minute), ClientIP: "192.0.2.7",
		Expiry: expiry,
	}
}

func authCode(id string, expiry time.Time) storage.AuthCode {
	return storage.AuthCode{
		ID: id, ClientID: "kubernetes", RedirectURI: "http://127.0.0.1:18000/cb", Nonce: "n-" + id,
		Scopes:      []string{"openid", "email"},
		PKCE:        storage.PKCE{CodeChallenge: "challenge-" + id, CodeChallengeMethod: "S256"},
		ConnectorID: "local", ConnectorData: []byte{9, 8, 7, 0}, Claims: claims("u-" + id),
		AuthTime: ts(-2 * time.Minute), Expiry: expiry,
	}
}

func family(id, connectorID, userID, clientID string, created time.Time) storage.RefreshFamily {
	return storage.RefreshFamily{
		ID: id, ClientID: clientID, ConnectorID: connectorID, Scopes: []string{"openid", "offline_access", "groups"},
		Nonce: "n-" + id, Claims: claims(userID), ConnectorData: []byte(`{"refresh":"` + id + `"}`),
		ClaimsRefreshedAt: created.Add(time.Second), AuthTime: created.Add(-time.Second),
		Generation: 1, CurrentHash: []byte("current-hash-32-bytes-" + id), PreviousHash: []byte{0, 0, 1},
		RotatedAt: created.Add(2 * time.Second), RotationKey: []byte("rotation-key-" + id),
		CreatedAt: created, LastUsed: created.Add(3 * time.Second), ClientIP: "2001:db8::1",
	}
}

func deviceRequest(hash, userCode string, expiry time.Time) storage.DeviceRequest {
	return storage.DeviceRequest{
		DeviceCodeHash: hash, UserCode: userCode, ClientID: "cli", Scopes: []string{"openid", "groups"},
		Expiry: expiry, Interval: 5 * time.Second, LastPoll: ts(-10 * time.Second),
		Status: storage.DevicePending, ConnectorID: "github", ConnectorData: []byte("cd"),
		Claims: claims("device-user"), AuthTime: ts(-time.Hour), Nonce: "dn",
	}
}

func password(email string) storage.Password {
	return storage.Password{Email: email, Hash: []byte("$2a$10$abcdefghijklmnopqrstuv"), Username: "admin", UserID: "08a8684b"}
}

func keys(tag string, n int) storage.Keys {
	k := storage.Keys{SigningKey: []byte(`{"kid":"` + tag + `","d":"secret"}`), NextRotation: ts(6 * time.Hour)}
	for i := range n {
		k.VerificationKeys = append(k.VerificationKeys, storage.VerificationKey{
			PublicKey: []byte(fmt.Sprintf(`{"kid":"%s-%d"}`, tag, i)), Expiry: ts(time.Duration(i) * time.Hour),
		})
	}
	return k
}

// wantErr fails t unless err matches target (errors.Is).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want %v", what, err, target)
	}
}

// noErr fails t on err.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// errUpdater is what an updater returns to abort.
var errUpdater = errors.New("conformance: updater refused")
