package conformance

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

var listAndGCTests = []test{
	{"ListRefreshFamilies", testListFamilies},
	{"ListRefreshFamiliesByClaim", testListFamiliesByClaim},
	{"GarbageCollect", testGC},
	{"GarbageCollectZeroCutoffs", testGCZeroCutoffs},
}

// testListFamilies gives one user several sessions of several clients,
// beside other users and connectors, and lists them newest first.
func testListFamilies(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	mine := []storage.RefreshFamily{
		family("f-laptop", "github", "alice", "kubernetes", ts(1*time.Second)),
		family("f-desktop", "github", "alice", "kubernetes", ts(3*time.Second)),
		family("f-other-client", "github", "alice", "grafana", ts(2*time.Second)),
		family("f-newest", "github", "alice", "kubernetes", ts(time.Hour)),
	}
	mine[2].Revoked = true // revoked families are listed too, until collected
	others := []storage.RefreshFamily{
		family("f-bob", "github", "bob", "kubernetes", ts(4*time.Second)),
		family("f-alice-elsewhere", "ldap", "alice", "kubernetes", ts(5*time.Second)),
		family("f-alice-prefix", "github", "alice2", "kubernetes", ts(6*time.Second)),
	}
	for _, f := range append(append([]storage.RefreshFamily{}, mine...), others...) {
		noErr(t, "CreateRefreshFamily "+f.ID, s.CreateRefreshFamily(ctx, f))
	}
	got, err := s.ListRefreshFamilies(ctx, "github", "alice")
	noErr(t, "ListRefreshFamilies", err)
	mustEqual(t, "alice's families", got, []storage.RefreshFamily{mine[3], mine[1], mine[2], mine[0]})

	got, err = s.ListRefreshFamilies(ctx, "ldap", "alice")
	noErr(t, "ListRefreshFamilies ldap", err)
	mustEqual(t, "alice's ldap families", got, []storage.RefreshFamily{others[1]})

	got, err = s.ListRefreshFamilies(ctx, "github", "nobody")
	noErr(t, "ListRefreshFamilies nobody", err)
	if len(got) != 0 {
		t.Fatalf("families of an unknown user: %d", len(got))
	}

	// The list follows updates of the user's claims.
	noErr(t, "UpdateRefreshFamily", s.UpdateRefreshFamily(ctx, "f-bob", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.Claims.UserID = "alice"
		return f, nil
	}))
	got, err = s.ListRefreshFamilies(ctx, "github", "alice")
	noErr(t, "ListRefreshFamilies", err)
	if len(got) != 5 || got[1].ID != "f-bob" {
		t.Fatalf("after moving f-bob to alice: %d families, second %q", len(got), got[1].ID)
	}
	got, err = s.ListRefreshFamilies(ctx, "github", "bob")
	noErr(t, "ListRefreshFamilies bob", err)
	if len(got) != 0 {
		t.Fatalf("bob still has %d families", len(got))
	}
}

// testListFamiliesByClaim finds the sessions behind a kube-apiserver
// user name: every connector's, by exact value only.
func testListFamiliesByClaim(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	fams := []storage.RefreshFamily{
		family("f-laptop", "github", "alice", "kubernetes", ts(1*time.Second)),
		family("f-desktop", "github", "alice", "kubernetes", ts(3*time.Second)),
		family("f-local", "local", "alice", "kubernetes", ts(2*time.Second)),
		family("f-alice2", "github", "alice2", "kubernetes", ts(4*time.Second)),
		family("f-upper", "github", "ALICE", "kubernetes", ts(5*time.Second)),
		family("f-bob", "github", "bob", "kubernetes", ts(6*time.Second)),
	}
	fams[2].Revoked = true // listed (marked) until collected
	for _, f := range fams {
		noErr(t, "CreateRefreshFamily "+f.ID, s.CreateRefreshFamily(ctx, f))
	}
	for _, tc := range []struct {
		claim, value string
		limit        int
		want         []string
	}{
		{storage.ClaimPreferredUsername, "alice-login", 10, []string{"f-desktop", "f-local", "f-laptop"}},
		{storage.ClaimPreferredUsername, "alice-login", 2, []string{"f-desktop", "f-local"}}, // the newest
		{storage.ClaimPreferredUsername, "alice-login", 1, []string{"f-desktop"}},
		{storage.ClaimEmail, "alice@example.com", 10, []string{"f-desktop", "f-local", "f-laptop"}},
		{storage.ClaimPreferredUsername, "alice2-login", 10, []string{"f-alice2"}},
		{storage.ClaimPreferredUsername, "ALICE-login", 10, []string{"f-upper"}},
		{storage.ClaimPreferredUsername, "alice", 10, nil},  // no prefix match
		{storage.ClaimPreferredUsername, "alice%", 10, nil}, // no pattern match
		{storage.ClaimEmail, "alice-login", 10, nil},        // the other claim's value
		{storage.ClaimPreferredUsername, "", 10, nil},
	} {
		got, err := s.ListRefreshFamiliesByClaim(ctx, tc.claim, tc.value, tc.limit)
		noErr(t, fmt.Sprintf("ListRefreshFamiliesByClaim %s=%s limit %d", tc.claim, tc.value, tc.limit), err)
		var ids []string
		for _, f := range got {
			ids = append(ids, f.ID)
		}
		mustEqual(t, fmt.Sprintf("%s=%s limit %d", tc.claim, tc.value, tc.limit), ids, tc.want)
	}
	got, err := s.ListRefreshFamiliesByClaim(ctx, storage.ClaimPreferredUsername, "alice-login", 10)
	noErr(t, "ListRefreshFamiliesByClaim", err)
	mustEqual(t, "whole families", got, []storage.RefreshFamily{fams[1], fams[2], fams[0]})

	// The lookup follows updates of the claims.
	noErr(t, "UpdateRefreshFamily", s.UpdateRefreshFamily(ctx, "f-bob", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.Claims.PreferredUsername = "alice-login"
		return f, nil
	}))
	got, err = s.ListRefreshFamiliesByClaim(ctx, storage.ClaimPreferredUsername, "alice-login", 10)
	noErr(t, "ListRefreshFamiliesByClaim", err)
	if len(got) != 4 || got[0].ID != "f-bob" {
		t.Fatalf("after renaming bob: %d families, first %v", len(got), got)
	}

	for _, claim := range []string{"sub", "name", "groups", "preferred_username = '' OR 1=1 --"} {
		if _, err := s.ListRefreshFamiliesByClaim(ctx, claim, "x", 10); err == nil {
			t.Errorf("ListRefreshFamiliesByClaim(%q): no error", claim)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.ListRefreshFamiliesByClaim(ctx, storage.ClaimPreferredUsername, "alice-login", limit); err == nil {
			t.Errorf("ListRefreshFamiliesByClaim limit %d: no error", limit)
		}
	}
}

// gcFixture stores one expired and one live object of each kind with an
// expiry, and refresh families for each reason to collect one.
func gcFixture(t *testing.T, s storage.Storage, now time.Time) {
	ctx := t.Context()
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, authRequest("req-expired", now.Add(-time.Second))))
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, authRequest("req-live", now.Add(time.Hour))))
	noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, authCode("code-expired", now.Add(-time.Second))))
	noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, authCode("code-live", now.Add(time.Hour))))
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, deviceRequest("dev-expired", "EXPIRED1", now.Add(-time.Second))))
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, deviceRequest("dev-live", "LIVECODE", now.Add(time.Hour))))

	live := family("fam-live", "github", "alice", "kubernetes", now.Add(-time.Hour))
	live.LastUsed = now.Add(-time.Minute)
	revoked := family("fam-revoked", "github", "alice", "kubernetes", now.Add(-time.Hour))
	revoked.LastUsed, revoked.Revoked = now.Add(-time.Minute), true
	idle := family("fam-idle", "github", "alice", "kubernetes", now.Add(-3*time.Hour))
	idle.LastUsed = now.Add(-2 * time.Hour)
	old := family("fam-old", "github", "alice", "kubernetes", now.Add(-48*time.Hour))
	old.LastUsed = now.Add(-time.Minute)
	for _, f := range []storage.RefreshFamily{live, revoked, idle, old} {
		noErr(t, "CreateRefreshFamily "+f.ID, s.CreateRefreshFamily(ctx, f))
	}
	noErr(t, "CreatePassword", s.CreatePassword(ctx, password("keep@example.com")))
	noErr(t, "UpdateKeys", s.UpdateKeys(ctx, 0, keys("keep", 1)))
}

func testGC(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	gcFixture(t, s, now)

	res, err := s.GarbageCollect(ctx, now, now.Add(-time.Hour), now.Add(-24*time.Hour))
	noErr(t, "GarbageCollect", err)
	mustEqual(t, "GCResult", res, storage.GCResult{AuthRequests: 1, AuthCodes: 1, DeviceRequests: 1, RefreshTokens: 3})
	if res.IsEmpty() {
		t.Fatal("IsEmpty on a non-empty result")
	}

	// Survivors are intact.
	_, err = s.GetAuthRequest(ctx, "req-live")
	noErr(t, "GetAuthRequest live", err)
	_, err = s.GetAuthCode(ctx, "code-live")
	noErr(t, "GetAuthCode live", err)
	_, err = s.GetDeviceRequest(ctx, "dev-live")
	noErr(t, "GetDeviceRequest live", err)
	_, err = s.GetRefreshFamily(ctx, "fam-live")
	noErr(t, "GetRefreshFamily live", err)
	_, err = s.GetPassword(ctx, "keep@example.com")
	noErr(t, "GetPassword", err)
	_, err = s.GetKeys(ctx)
	noErr(t, "GetKeys", err)

	// The collected are gone, not merely hidden: their keys are free and
	// even the device updater (which sees expired requests) finds nothing.
	for _, id := range []string{"fam-revoked", "fam-idle", "fam-old"} {
		_, err = s.GetRefreshFamily(ctx, id)
		wantErr(t, "GetRefreshFamily "+id, err, storage.ErrNotFound)
	}
	wantErr(t, "UpdateDeviceRequest collected", s.UpdateDeviceRequest(ctx, "dev-expired", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		t.Error("updater called for a collected device request")
		return d, nil
	}), storage.ErrNotFound)
	noErr(t, "CreateAuthRequest over a collected one", s.CreateAuthRequest(ctx, authRequest("req-expired", now.Add(time.Hour))))
	noErr(t, "CreateAuthCode over a collected one", s.CreateAuthCode(ctx, authCode("code-expired", now.Add(time.Hour))))
	noErr(t, "CreateDeviceRequest with a collected user code", s.CreateDeviceRequest(ctx, deviceRequest("dev-new", "EXPIRED1", now.Add(time.Hour))))

	res, err = s.GarbageCollect(ctx, now, now.Add(-time.Hour), now.Add(-24*time.Hour))
	noErr(t, "GarbageCollect again", err)
	if !res.IsEmpty() {
		t.Fatalf("second GarbageCollect removed %+v, want nothing", res)
	}
}

func testGCZeroCutoffs(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	gcFixture(t, s, now)
	res, err := s.GarbageCollect(ctx, now, time.Time{}, time.Time{})
	noErr(t, "GarbageCollect", err)
	mustEqual(t, "GCResult", res, storage.GCResult{AuthRequests: 1, AuthCodes: 1, DeviceRequests: 1, RefreshTokens: 1})
	for _, id := range []string{"fam-live", "fam-idle", "fam-old"} {
		_, err = s.GetRefreshFamily(ctx, id)
		noErr(t, "GetRefreshFamily "+id+" (zero cut-offs keep it)", err)
	}
	_, err = s.GetRefreshFamily(ctx, "fam-revoked")
	wantErr(t, "GetRefreshFamily fam-revoked", err, storage.ErrNotFound)

	// Only the idle cut-off.
	res, err = s.GarbageCollect(ctx, now, now.Add(-time.Hour), time.Time{})
	noErr(t, "GarbageCollect idle only", err)
	mustEqual(t, "GCResult idle only", res, storage.GCResult{RefreshTokens: 1})
	_, err = s.GetRefreshFamily(ctx, "fam-idle")
	wantErr(t, "GetRefreshFamily fam-idle", err, storage.ErrNotFound)
	// Only the absolute cut-off.
	res, err = s.GarbageCollect(ctx, now, time.Time{}, now.Add(-24*time.Hour))
	noErr(t, "GarbageCollect absolute only", err)
	mustEqual(t, "GCResult absolute only", res, storage.GCResult{RefreshTokens: 1})
	_, err = s.GetRefreshFamily(ctx, "fam-old")
	wantErr(t, "GetRefreshFamily fam-old", err, storage.ErrNotFound)
	_, err = s.GetRefreshFamily(ctx, "fam-live")
	noErr(t, "GetRefreshFamily fam-live", err)
}
