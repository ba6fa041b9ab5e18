package conformance

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

var crudTests = []test{
	{"Ping", testPing},
	{"AuthRequest", testAuthRequest},
	{"AuthRequestExpired", testAuthRequestExpired},
	{"AuthCode", testAuthCode},
	{"AuthCodeExpired", testAuthCodeExpired},
	{"RefreshFamily", testRefreshFamily},
	{"DeviceRequest", testDeviceRequest},
	{"DeviceRequestExpired", testDeviceRequestExpired},
	{"Password", testPassword},
	{"Keys", testKeys},
	{"CanonicalForm", testCanonicalForm},
	{"ReturnedValuesAreCopies", testCopies},
}

func testPing(t *testing.T, s storage.Storage) {
	noErr(t, "Ping", s.Ping(t.Context()))
}

func testAuthRequest(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	want := authRequest("req-1", future())
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, want))
	wantErr(t, "CreateAuthRequest again", s.CreateAuthRequest(ctx, authRequest("req-1", future())), storage.ErrAlreadyExists)
	got, err := s.GetAuthRequest(ctx, "req-1")
	noErr(t, "GetAuthRequest", err)
	mustEqual(t, "AuthRequest", got, want)

	_, err = s.GetAuthRequest(ctx, "req-missing")
	wantErr(t, "GetAuthRequest missing", err, storage.ErrNotFound)
	wantErr(t, "UpdateAuthRequest missing", s.UpdateAuthRequest(ctx, "req-missing", func(a storage.AuthRequest) (storage.AuthRequest, error) {
		t.Error("updater called for a missing auth request")
		return a, nil
	}), storage.ErrNotFound)

	// An updater error aborts and is returned as is.
	err = s.UpdateAuthRequest(ctx, "req-1", func(a storage.AuthRequest) (storage.AuthRequest, error) {
		a.LoggedIn = false
		return a, errUpdater
	})
	wantErr(t, "UpdateAuthRequest with failing updater", err, errUpdater)
	got, err = s.GetAuthRequest(ctx, "req-1")
	noErr(t, "GetAuthRequest", err)
	mustEqual(t, "AuthRequest after failed update", got, want)

	// Every field can change; the key cannot.
	next := authRequest("req-1", future().Add(time.Minute))
	next.ClientID, next.ResponseTypes, next.Scopes = "other", []string{"code"}, []string{"openid"}
	next.RedirectURI, next.Nonce, next.State, next.Prompt, next.MaxAge = "http://localhost:18000", "n2", "s2", "none", -1
	next.PKCE = storage.PKCE{CodeChallenge: "c2", CodeChallengeMethod: "plain"}
	next.HMACKey, next.ConnectorID, next.ConnectorData = []byte{7}, "local", []byte("more")
	next.LoggedIn, next.Claims, next.AuthTime, next.ClientIP = false, claims("someone-else"), ts(time.Hour), "198.51.100.1"
	err = s.UpdateAuthRequest(ctx, "req-1", func(a storage.AuthRequest) (storage.AuthRequest, error) {
		mustEqual(t, "updater input", a, want)
		n := next
		n.ID = "req-moved"
		return n, nil
	})
	noErr(t, "UpdateAuthRequest", err)
	got, err = s.GetAuthRequest(ctx, "req-1")
	noErr(t, "GetAuthRequest after update", err)
	mustEqual(t, "AuthRequest after update", got, next)
	_, err = s.GetAuthRequest(ctx, "req-moved")
	wantErr(t, "GetAuthRequest under the updater's ID", err, storage.ErrNotFound)

	noErr(t, "DeleteAuthRequest", s.DeleteAuthRequest(ctx, "req-1"))
	_, err = s.GetAuthRequest(ctx, "req-1")
	wantErr(t, "GetAuthRequest after delete", err, storage.ErrNotFound)
	wantErr(t, "DeleteAuthRequest again", s.DeleteAuthRequest(ctx, "req-1"), storage.ErrNotFound)
	// The key is free again.
	noErr(t, "CreateAuthRequest after delete", s.CreateAuthRequest(ctx, want))
}

func testAuthRequestExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, authRequest("req-old", past())))
	_, err := s.GetAuthRequest(ctx, "req-old")
	wantErr(t, "GetAuthRequest expired", err, storage.ErrNotFound)
	wantErr(t, "UpdateAuthRequest expired", s.UpdateAuthRequest(ctx, "req-old", func(a storage.AuthRequest) (storage.AuthRequest, error) {
		t.Error("updater called for an expired auth request")
		return a, nil
	}), storage.ErrNotFound)
	// Until garbage collection it still holds its key.
	wantErr(t, "CreateAuthRequest over expired", s.CreateAuthRequest(ctx, authRequest("req-old", future())), storage.ErrAlreadyExists)
}

func testAuthCode(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	want := authCode("code-1", future())
	noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, want))
	wantErr(t, "CreateAuthCode again", s.CreateAuthCode(ctx, want), storage.ErrAlreadyExists)
	got, err := s.GetAuthCode(ctx, "code-1")
	noErr(t, "GetAuthCode", err)
	mustEqual(t, "AuthCode", got, want)
	_, err = s.GetAuthCode(ctx, "code-missing")
	wantErr(t, "GetAuthCode missing", err, storage.ErrNotFound)
	wantErr(t, "UpdateAuthCode missing", s.UpdateAuthCode(ctx, "code-missing", func(c storage.AuthCode) (storage.AuthCode, error) {
		t.Error("updater called for a missing code")
		return c, nil
	}), storage.ErrNotFound)

	wantErr(t, "UpdateAuthCode failing", s.UpdateAuthCode(ctx, "code-1", func(c storage.AuthCode) (storage.AuthCode, error) {
		c.RedeemedAt = ts(0)
		return c, errUpdater
	}), errUpdater)
	got, err = s.GetAuthCode(ctx, "code-1")
	noErr(t, "GetAuthCode", err)
	mustEqual(t, "AuthCode after failed update", got, want)

	next := authCode("code-1", future().Add(time.Second))
	next.ClientID, next.RedirectURI, next.Nonce, next.Scopes = "c2", "http://localhost:8000", "n2", []string{"openid", "groups", "email"}
	next.PKCE, next.ConnectorID, next.ConnectorData = storage.PKCE{}, "oidc", nil
	next.Claims, next.AuthTime = claims("other"), ts(time.Minute)
	next.RedeemedAt, next.FamilyID = ts(time.Second), "family-9"
	noErr(t, "UpdateAuthCode", s.UpdateAuthCode(ctx, "code-1", func(c storage.AuthCode) (storage.AuthCode, error) {
		mustEqual(t, "updater input", c, want)
		n := next
		n.ID = "code-moved"
		return n, nil
	}))
	got, err = s.GetAuthCode(ctx, "code-1")
	noErr(t, "GetAuthCode after update", err)
	mustEqual(t, "AuthCode after update", got, next)
	_, err = s.GetAuthCode(ctx, "code-moved")
	wantErr(t, "GetAuthCode under the updater's ID", err, storage.ErrNotFound)
}

func testAuthCodeExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, authCode("code-old", past())))
	_, err := s.GetAuthCode(ctx, "code-old")
	wantErr(t, "GetAuthCode expired", err, storage.ErrNotFound)
	wantErr(t, "UpdateAuthCode expired", s.UpdateAuthCode(ctx, "code-old", func(c storage.AuthCode) (storage.AuthCode, error) {
		t.Error("updater called for an expired code")
		return c, nil
	}), storage.ErrNotFound)
}

func testRefreshFamily(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	want := family("fam-1", "github", "user-1", "kubernetes", ts(0))
	noErr(t, "CreateRefreshFamily", s.CreateRefreshFamily(ctx, want))
	wantErr(t, "CreateRefreshFamily again", s.CreateRefreshFamily(ctx, want), storage.ErrAlreadyExists)
	got, err := s.GetRefreshFamily(ctx, "fam-1")
	noErr(t, "GetRefreshFamily", err)
	mustEqual(t, "RefreshFamily", got, want)
	_, err = s.GetRefreshFamily(ctx, "fam-missing")
	wantErr(t, "GetRefreshFamily missing", err, storage.ErrNotFound)
	wantErr(t, "UpdateRefreshFamily missing", s.UpdateRefreshFamily(ctx, "fam-missing", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		t.Error("updater called for a missing family")
		return f, nil
	}), storage.ErrNotFound)

	wantErr(t, "UpdateRefreshFamily failing", s.UpdateRefreshFamily(ctx, "fam-1", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.Revoked = true
		return f, errUpdater
	}), errUpdater)
	got, err = s.GetRefreshFamily(ctx, "fam-1")
	noErr(t, "GetRefreshFamily", err)
	mustEqual(t, "RefreshFamily after failed update", got, want)

	next := family("fam-1", "oidc", "user-2", "other-client", ts(time.Hour))
	next.Scopes, next.Nonce, next.ConnectorData = []string{"openid"}, "n2", []byte{0}
	next.Generation, next.CurrentHash, next.PreviousHash = 42, []byte("new"), []byte("current-hash-32-bytes-fam-1")
	next.RotationKey, next.ClientIP, next.Revoked = []byte("k2"), "203.0.113.9", true
	noErr(t, "UpdateRefreshFamily", s.UpdateRefreshFamily(ctx, "fam-1", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		mustEqual(t, "updater input", f, want)
		n := next
		n.ID = "fam-moved"
		return n, nil
	}))
	got, err = s.GetRefreshFamily(ctx, "fam-1")
	noErr(t, "GetRefreshFamily after update", err)
	mustEqual(t, "RefreshFamily after update", got, next)
	_, err = s.GetRefreshFamily(ctx, "fam-moved")
	wantErr(t, "GetRefreshFamily under the updater's ID", err, storage.ErrNotFound)
	// A revoked family is still returned: the issuer tells replays apart.
	if !got.Revoked {
		t.Fatal("Revoked lost")
	}

	noErr(t, "DeleteRefreshFamily", s.DeleteRefreshFamily(ctx, "fam-1"))
	_, err = s.GetRefreshFamily(ctx, "fam-1")
	wantErr(t, "GetRefreshFamily after delete", err, storage.ErrNotFound)
	wantErr(t, "DeleteRefreshFamily again", s.DeleteRefreshFamily(ctx, "fam-1"), storage.ErrNotFound)
	list, err := s.ListRefreshFamilies(ctx, "oidc", "user-2")
	noErr(t, "ListRefreshFamilies", err)
	if len(list) != 0 {
		t.Fatalf("ListRefreshFamilies after delete: %d families", len(list))
	}
}

func testDeviceRequest(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	want := deviceRequest("dev-hash-1", "BCDFGHJK", future())
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, want))
	wantErr(t, "CreateDeviceRequest same hash", s.CreateDeviceRequest(ctx, deviceRequest("dev-hash-1", "ZZZZZZZZ", future())), storage.ErrAlreadyExists)
	wantErr(t, "CreateDeviceRequest same user code", s.CreateDeviceRequest(ctx, deviceRequest("dev-hash-2", "BCDFGHJK", future())), storage.ErrAlreadyExists)

	got, err := s.GetDeviceRequest(ctx, "dev-hash-1")
	noErr(t, "GetDeviceRequest", err)
	mustEqual(t, "DeviceRequest", got, want)
	got, err = s.GetDeviceRequestByUserCode(ctx, "BCDFGHJK")
	noErr(t, "GetDeviceRequestByUserCode", err)
	mustEqual(t, "DeviceRequest by user code", got, want)
	_, err = s.GetDeviceRequest(ctx, "dev-hash-2")
	wantErr(t, "GetDeviceRequest missing", err, storage.ErrNotFound)
	_, err = s.GetDeviceRequestByUserCode(ctx, "ZZZZZZZZ")
	wantErr(t, "GetDeviceRequestByUserCode missing", err, storage.ErrNotFound)
	wantErr(t, "UpdateDeviceRequest missing", s.UpdateDeviceRequest(ctx, "dev-hash-2", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		t.Error("updater called for a missing device request")
		return d, nil
	}), storage.ErrNotFound)

	wantErr(t, "UpdateDeviceRequest failing", s.UpdateDeviceRequest(ctx, "dev-hash-1", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		d.Status = storage.DeviceApproved
		return d, errUpdater
	}), errUpdater)
	got, err = s.GetDeviceRequest(ctx, "dev-hash-1")
	noErr(t, "GetDeviceRequest", err)
	mustEqual(t, "DeviceRequest after failed update", got, want)

	next := want
	next.ClientID, next.Scopes, next.Expiry = "cli-2", []string{"openid"}, future().Add(time.Minute)
	next.Interval, next.LastPoll, next.Status = 10*time.Second+time.Millisecond, ts(time.Second), storage.DeviceApproved
	next.ConnectorID, next.ConnectorData, next.Claims = "local", []byte("x"), claims("approver")
	next.AuthTime, next.Nonce = ts(2*time.Second), "dn2"
	noErr(t, "UpdateDeviceRequest", s.UpdateDeviceRequest(ctx, "dev-hash-1", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		mustEqual(t, "updater input", d, want)
		n := next
		n.DeviceCodeHash = "dev-hash-moved"
		return n, nil
	}))
	got, err = s.GetDeviceRequest(ctx, "dev-hash-1")
	noErr(t, "GetDeviceRequest after update", err)
	mustEqual(t, "DeviceRequest after update", got, next)
	got, err = s.GetDeviceRequestByUserCode(ctx, "BCDFGHJK")
	noErr(t, "GetDeviceRequestByUserCode after update", err)
	mustEqual(t, "DeviceRequest by user code after update", got, next)
	_, err = s.GetDeviceRequest(ctx, "dev-hash-moved")
	wantErr(t, "GetDeviceRequest under the updater's key", err, storage.ErrNotFound)
}

func testDeviceRequestExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	old := deviceRequest("dev-old", "OLDCODE1", past())
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, old))
	_, err := s.GetDeviceRequest(ctx, "dev-old")
	wantErr(t, "GetDeviceRequest expired", err, storage.ErrNotFound)
	_, err = s.GetDeviceRequestByUserCode(ctx, "OLDCODE1")
	wantErr(t, "GetDeviceRequestByUserCode expired", err, storage.ErrNotFound)
	// The updater still sees an expired request, so the token endpoint
	// can answer expired_token rather than invalid_grant.
	called := false
	wantErr(t, "UpdateDeviceRequest expired", s.UpdateDeviceRequest(ctx, "dev-old", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		called = true
		mustEqual(t, "expired device request", d, old)
		return d, errUpdater
	}), errUpdater)
	if !called {
		t.Fatal("updater not called for an expired device request")
	}
}

func testPassword(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	in := password("Admin@Example.COM")
	noErr(t, "CreatePassword", s.CreatePassword(ctx, in))
	wantErr(t, "CreatePassword same email in other case", s.CreatePassword(ctx, password("admin@example.com")), storage.ErrAlreadyExists)
	want := in
	want.Email = "admin@example.com"
	for _, email := range []string{"admin@example.com", "ADMIN@EXAMPLE.COM", "Admin@Example.COM"} {
		got, err := s.GetPassword(ctx, email)
		noErr(t, "GetPassword "+email, err)
		mustEqual(t, "Password", got, want)
	}
	_, err := s.GetPassword(ctx, "nobody@example.com")
	wantErr(t, "GetPassword missing", err, storage.ErrNotFound)
	wantErr(t, "UpdatePassword missing", s.UpdatePassword(ctx, "nobody@example.com", func(p storage.Password) (storage.Password, error) {
		t.Error("updater called for a missing password")
		return p, nil
	}), storage.ErrNotFound)
	wantErr(t, "UpdatePassword failing", s.UpdatePassword(ctx, "admin@example.com", func(p storage.Password) (storage.Password, error) {
		p.Username = "x"
		return p, errUpdater
	}), errUpdater)

	next := storage.Password{Email: "moved@example.com", Hash: []byte("$2a$12$new"), Username: "root", UserID: "u-2"}
	noErr(t, "UpdatePassword", s.UpdatePassword(ctx, "ADMIN@example.com", func(p storage.Password) (storage.Password, error) {
		mustEqual(t, "updater input", p, want)
		return next, nil
	}))
	got, err := s.GetPassword(ctx, "admin@example.com")
	noErr(t, "GetPassword after update", err)
	next.Email = "admin@example.com"
	mustEqual(t, "Password after update", got, next)

	noErr(t, "CreatePassword b", s.CreatePassword(ctx, password("b@example.com")))
	noErr(t, "CreatePassword C", s.CreatePassword(ctx, password("C@example.com")))
	list, err := s.ListPasswords(ctx)
	noErr(t, "ListPasswords", err)
	var emails []string
	for _, p := range list {
		emails = append(emails, p.Email)
	}
	mustEqual(t, "ListPasswords emails (ordered by email)", emails, []string{"admin@example.com", "b@example.com", "c@example.com"})
	mustEqual(t, "ListPasswords[0]", list[0], next)

	noErr(t, "DeletePassword", s.DeletePassword(ctx, "B@EXAMPLE.com"))
	_, err = s.GetPassword(ctx, "b@example.com")
	wantErr(t, "GetPassword after delete", err, storage.ErrNotFound)
	wantErr(t, "DeletePassword again", s.DeletePassword(ctx, "b@example.com"), storage.ErrNotFound)
	list, err = s.ListPasswords(ctx)
	noErr(t, "ListPasswords", err)
	if len(list) != 2 {
		t.Fatalf("ListPasswords after delete: %d, want 2", len(list))
	}
}

func testKeys(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	_, err := s.GetKeys(ctx)
	wantErr(t, "GetKeys before the first rotation", err, storage.ErrNotFound)
	wantErr(t, "UpdateKeys(1) when none exist", s.UpdateKeys(ctx, 1, keys("a", 1)), storage.ErrConflict)

	first := keys("a", 2)
	first.Version = 99 // ignored: the stored version is expectedVersion+1
	noErr(t, "UpdateKeys(0)", s.UpdateKeys(ctx, 0, first))
	got, err := s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	first.Version = 1
	mustEqual(t, "Keys", got, first)

	wantErr(t, "UpdateKeys(0) again", s.UpdateKeys(ctx, 0, keys("b", 1)), storage.ErrConflict)
	wantErr(t, "UpdateKeys(2) ahead", s.UpdateKeys(ctx, 2, keys("b", 1)), storage.ErrConflict)
	second := keys("b", 3)
	noErr(t, "UpdateKeys(1)", s.UpdateKeys(ctx, 1, second))
	got, err = s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	second.Version = 2
	mustEqual(t, "Keys after update", got, second)
	wantErr(t, "UpdateKeys(1) stale", s.UpdateKeys(ctx, 1, keys("c", 1)), storage.ErrConflict)
	got, err = s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	mustEqual(t, "Keys after a lost CAS", got, second)

	// A key set may shrink to no verification keys at all.
	third := storage.Keys{SigningKey: []byte("k"), NextRotation: ts(time.Hour)}
	noErr(t, "UpdateKeys(2)", s.UpdateKeys(ctx, 2, third))
	got, err = s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	third.Version = 3
	mustEqual(t, "Keys without verification keys", got, third)
}

// testCanonicalForm stores values in non-canonical form (nanoseconds,
// another time zone, empty non-nil slices) and checks that they come back
// canonical: UTC, microseconds, nil.
func testCanonicalForm(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	nano := time.Date(2026, 7, 4, 23, 59, 59, 999999999, zone)
	wantT := time.Date(2026, 7, 4, 18, 29, 59, 999999000, time.UTC)

	f := family("fam-canon", "c", "u", "k", nano)
	f.ClaimsRefreshedAt, f.AuthTime, f.RotatedAt, f.LastUsed = nano, nano, nano, nano
	f.Scopes, f.ConnectorData, f.PreviousHash, f.RotationKey = []string{}, []byte{}, []byte{}, []byte{}
	f.Claims.Groups = []string{}
	f.Nonce, f.ClientIP = "", ""
	noErr(t, "CreateRefreshFamily", s.CreateRefreshFamily(ctx, f))
	got, err := s.GetRefreshFamily(ctx, "fam-canon")
	noErr(t, "GetRefreshFamily", err)
	want := f
	want.ClaimsRefreshedAt, want.AuthTime, want.RotatedAt, want.LastUsed, want.CreatedAt = wantT, wantT, wantT, wantT, wantT
	want.Scopes, want.ConnectorData, want.PreviousHash, want.RotationKey, want.Claims.Groups = nil, nil, nil, nil, nil
	mustEqual(t, "canonical RefreshFamily", got, want)

	// Zero times stay zero; nil stays nil.
	z := storage.RefreshFamily{ID: "fam-zero"}
	noErr(t, "CreateRefreshFamily zero", s.CreateRefreshFamily(ctx, z))
	gotZ, err := s.GetRefreshFamily(ctx, "fam-zero")
	noErr(t, "GetRefreshFamily zero", err)
	mustEqual(t, "zero RefreshFamily", gotZ, z)
	for name, tm := range map[string]time.Time{"CreatedAt": gotZ.CreatedAt, "LastUsed": gotZ.LastUsed, "RotatedAt": gotZ.RotatedAt} {
		if !tm.IsZero() {
			t.Errorf("%s of a zero family: %v, want the zero time", name, tm)
		}
	}

	// An update stores canonically too.
	noErr(t, "UpdateRefreshFamily", s.UpdateRefreshFamily(ctx, "fam-zero", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.LastUsed, f.Scopes = nano, []string{}
		return f, nil
	}))
	gotZ, err = s.GetRefreshFamily(ctx, "fam-zero")
	noErr(t, "GetRefreshFamily zero", err)
	z.LastUsed = wantT
	mustEqual(t, "updated zero RefreshFamily", gotZ, z)

	a := authRequest("req-canon", future())
	a.ResponseTypes, a.Scopes, a.HMACKey, a.ConnectorData = []string{}, []string{}, []byte{}, []byte{}
	a.AuthTime, a.Claims = nano, storage.Claims{Groups: []string{}}
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, a))
	gotA, err := s.GetAuthRequest(ctx, "req-canon")
	noErr(t, "GetAuthRequest", err)
	wantA := a
	wantA.ResponseTypes, wantA.Scopes, wantA.HMACKey, wantA.ConnectorData = nil, nil, nil, nil
	wantA.AuthTime, wantA.Claims = wantT, storage.Claims{}
	mustEqual(t, "canonical AuthRequest", gotA, wantA)

	k := storage.Keys{SigningKey: []byte{}, VerificationKeys: []storage.VerificationKey{{PublicKey: []byte{}, Expiry: nano}}, NextRotation: nano}
	noErr(t, "UpdateKeys", s.UpdateKeys(ctx, 0, k))
	gotK, err := s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	mustEqual(t, "canonical Keys", gotK, storage.Keys{VerificationKeys: []storage.VerificationKey{{Expiry: wantT}}, NextRotation: wantT, Version: 1})
	noErr(t, "UpdateKeys", s.UpdateKeys(ctx, 1, storage.Keys{VerificationKeys: []storage.VerificationKey{}}))
	gotK, err = s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	mustEqual(t, "empty Keys", gotK, storage.Keys{Version: 2})
}

// testCopies checks that a caller changing what it passed in or got back
// does not change what is stored.
func testCopies(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	f := family("fam-copy", "c", "u", "k", ts(0))
	want := family("fam-copy", "c", "u", "k", ts(0))
	noErr(t, "CreateRefreshFamily", s.CreateRefreshFamily(ctx, f))
	f.Scopes[0], f.CurrentHash[0], f.Claims.Groups[0] = "mutated", 'X', "mutated"
	got, err := s.GetRefreshFamily(ctx, "fam-copy")
	noErr(t, "GetRefreshFamily", err)
	mustEqual(t, "RefreshFamily after the caller changed its input", got, want)
	got.Scopes[0], got.CurrentHash[0], got.Claims.Groups[0] = "mutated", 'X', "mutated"
	again, err := s.GetRefreshFamily(ctx, "fam-copy")
	noErr(t, "GetRefreshFamily", err)
	mustEqual(t, "RefreshFamily after the caller changed its output", again, want)

	k := keys("a", 2)
	noErr(t, "UpdateKeys", s.UpdateKeys(ctx, 0, k))
	k.VerificationKeys[0].PublicKey[0] = 'X'
	gotK, err := s.GetKeys(ctx)
	noErr(t, "GetKeys", err)
	wantK := keys("a", 2)
	wantK.Version = 1
	mustEqual(t, "Keys after the caller changed its input", gotK, wantK)
}
