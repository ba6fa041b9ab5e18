package conformance

import (
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// RunPersistence checks that what one store wrote is there, whole, after
// it is closed and the database opened again. open must return a store on
// the same database each time it is called; RunPersistence closes it.
// For backends that persist (not memory).
func RunPersistence(t *testing.T, open func(t *testing.T) storage.Storage) {
	t.Helper()
	ctx := t.Context()
	req := authRequest("req-persist", future())
	code := authCode("code-persist", future())
	code.RedeemedAt, code.FamilyID = ts(time.Second), "fam-persist-1"
	fams := []storage.RefreshFamily{
		family("fam-persist-1", "github", "alice", "kubernetes", ts(0)),
		family("fam-persist-2", "github", "alice", "kubernetes", ts(time.Second)),
	}
	dev := deviceRequest("dev-persist", "PERSIST1", future())
	pwd := password("persist@example.com")
	k := keys("persist", 3)

	s := open(t)
	noErr(t, "CreateAuthRequest", s.CreateAuthRequest(ctx, req))
	noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, code))
	for _, f := range fams {
		noErr(t, "CreateRefreshFamily", s.CreateRefreshFamily(ctx, f))
	}
	noErr(t, "UpdateRefreshFamily", s.UpdateRefreshFamily(ctx, "fam-persist-2", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
		f.Generation, f.PreviousHash, f.CurrentHash = 2, f.CurrentHash, []byte("rotated")
		return f, nil
	}))
	fams[1].Generation, fams[1].PreviousHash, fams[1].CurrentHash = 2, fams[1].CurrentHash, []byte("rotated")
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, dev))
	noErr(t, "CreatePassword", s.CreatePassword(ctx, pwd))
	noErr(t, "UpdateKeys", s.UpdateKeys(ctx, 0, k))
	noErr(t, "Close", s.Close())

	s = open(t)
	defer s.Close()
	gotReq, err := s.GetAuthRequest(ctx, req.ID)
	noErr(t, "GetAuthRequest after reopen", err)
	mustEqual(t, "AuthRequest after reopen", gotReq, req)
	gotCode, err := s.GetAuthCode(ctx, code.ID)
	noErr(t, "GetAuthCode after reopen", err)
	mustEqual(t, "AuthCode after reopen", gotCode, code)
	gotFams, err := s.ListRefreshFamilies(ctx, "github", "alice")
	noErr(t, "ListRefreshFamilies after reopen", err)
	mustEqual(t, "RefreshFamilies after reopen", gotFams, []storage.RefreshFamily{fams[1], fams[0]})
	gotDev, err := s.GetDeviceRequestByUserCode(ctx, dev.UserCode)
	noErr(t, "GetDeviceRequestByUserCode after reopen", err)
	mustEqual(t, "DeviceRequest after reopen", gotDev, dev)
	gotPwd, err := s.GetPassword(ctx, pwd.Email)
	noErr(t, "GetPassword after reopen", err)
	mustEqual(t, "Password after reopen", gotPwd, pwd)
	gotKeys, err := s.GetKeys(ctx)
	noErr(t, "GetKeys after reopen", err)
	k.Version = 1
	mustEqual(t, "Keys after reopen", gotKeys, k)
	// The reopened store still enforces what it did before.
	wantErr(t, "CreateRefreshFamily after reopen", s.CreateRefreshFamily(ctx, fams[0]), storage.ErrAlreadyExists)
	wantErr(t, "UpdateKeys(0) after reopen", s.UpdateKeys(ctx, 0, k), storage.ErrConflict)
	noErr(t, "UpdateKeys(1) after reopen", s.UpdateKeys(ctx, 1, k))
}
