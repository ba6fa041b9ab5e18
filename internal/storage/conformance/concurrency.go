package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

var concurrencyTests = []test{
	{"ConcurrentRefreshRotation", testConcurrentRotation},
	{"ConcurrentCodeRedemption", testConcurrentRedemption},
	{"ConcurrentDeviceApproval", testConcurrentDeviceApproval},
	{"ConcurrentKeysCAS", testConcurrentKeys},
}

const (
	workers = 8
	rounds  = 20
)

// run starts n goroutines at once (behind a barrier) and waits for them.
func run(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			f(i)
		})
	}
	close(start)
	wg.Wait()
}

// testConcurrentRotation runs read-modify-write updaters from several
// goroutines on one refresh family, as concurrent refresh grants do: no
// update may be lost, and each updater must see the previous one's result
// (the hash it sets is derived from the generation it read).
func testConcurrentRotation(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	f := family("fam-race", "github", "u", "kubernetes", ts(0))
	f.Generation, f.CurrentHash = 0, []byte("gen-0")
	noErr(t, "CreateRefreshFamily", s.CreateRefreshFamily(ctx, f))
	var failures atomic.Int64
	var mismatch atomic.Value
	run(workers, func(w int) {
		for range rounds {
			err := s.UpdateRefreshFamily(ctx, "fam-race", func(f storage.RefreshFamily) (storage.RefreshFamily, error) {
				if want := "gen-" + strconv.FormatInt(f.Generation, 10); string(f.CurrentHash) != want {
					mismatch.Store(fmt.Sprintf("updater saw CurrentHash %q with Generation %d", f.CurrentHash, f.Generation))
				}
				f.PreviousHash = f.CurrentHash
				f.Generation++
				f.CurrentHash = []byte("gen-" + strconv.FormatInt(f.Generation, 10))
				f.ClientIP = "worker-" + strconv.Itoa(w)
				return f, nil
			})
			if err != nil {
				failures.Add(1)
				t.Errorf("UpdateRefreshFamily: %v", err)
			}
		}
	})
	if m := mismatch.Load(); m != nil {
		t.Fatal(m)
	}
	if failures.Load() > 0 {
		t.FailNow()
	}
	got, err := s.GetRefreshFamily(ctx, "fam-race")
	noErr(t, "GetRefreshFamily", err)
	if want := int64(workers * rounds); got.Generation != want {
		t.Fatalf("Generation %d after %d concurrent increments: updates were lost", got.Generation, want)
	}
	if want := fmt.Sprintf("gen-%d", workers*rounds); string(got.CurrentHash) != want {
		t.Fatalf("CurrentHash %q, want %q", got.CurrentHash, want)
	}
}

var errRedeemed = errors.New("conformance: code already redeemed")

// testConcurrentRedemption redeems each code from several goroutines at
// once: exactly one wins, and the stored family is the winner's.
func testConcurrentRedemption(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for c := range 5 {
		id := fmt.Sprintf("code-race-%d", c)
		noErr(t, "CreateAuthCode", s.CreateAuthCode(ctx, authCode(id, future())))
		var wins, losses atomic.Int64
		var winner atomic.Value
		run(workers, func(w int) {
			err := s.UpdateAuthCode(ctx, id, func(c storage.AuthCode) (storage.AuthCode, error) {
				if !c.RedeemedAt.IsZero() {
					return c, errRedeemed
				}
				c.RedeemedAt, c.FamilyID = time.Now(), fmt.Sprintf("family-of-%d", w)
				return c, nil
			})
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(fmt.Sprintf("family-of-%d", w))
			case errors.Is(err, errRedeemed):
				losses.Add(1)
			default:
				t.Errorf("UpdateAuthCode: %v", err)
			}
		})
		if wins.Load() != 1 || losses.Load() != workers-1 {
			t.Fatalf("%s: %d redemptions succeeded and %d saw it redeemed, want 1 and %d", id, wins.Load(), losses.Load(), workers-1)
		}
		got, err := s.GetAuthCode(ctx, id)
		noErr(t, "GetAuthCode", err)
		if got.RedeemedAt.IsZero() || got.FamilyID != winner.Load() {
			t.Fatalf("%s: stored FamilyID %q RedeemedAt %v, want the winner's %q", id, got.FamilyID, got.RedeemedAt, winner.Load())
		}
	}
}

// testConcurrentDeviceApproval moves a device request from pending to
// approved to redeemed from competing goroutines: each step happens once.
func testConcurrentDeviceApproval(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	noErr(t, "CreateDeviceRequest", s.CreateDeviceRequest(ctx, deviceRequest("dev-race", "RACECODE", future())))
	var approved, redeemed atomic.Int64
	step := func(from, to string, n *atomic.Int64) {
		err := s.UpdateDeviceRequest(ctx, "dev-race", func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
			if d.Status != from {
				return d, errRedeemed
			}
			d.Status = to
			return d, nil
		})
		if err == nil {
			n.Add(1)
		} else if !errors.Is(err, errRedeemed) {
			t.Errorf("UpdateDeviceRequest: %v", err)
		}
	}
	run(workers, func(w int) {
		if w%2 == 0 {
			step(storage.DevicePending, storage.DeviceApproved, &approved)
		}
		for range 5 {
			step(storage.DeviceApproved, storage.DeviceRedeemed, &redeemed)
		}
	})
	if approved.Load() != 1 || redeemed.Load() > 1 {
		t.Fatalf("approved %d times, redeemed %d times; want 1 and at most 1", approved.Load(), redeemed.Load())
	}
}

// testConcurrentKeys races several writers with the same expected version,
// round after round, while readers check that every key set they see is
// whole (one writer's signing key with all of that writer's public keys).
func testConcurrentKeys(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	const perSet = 3
	stop := make(chan struct{})
	var readers sync.WaitGroup
	var reads atomic.Int64
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				k, err := s.GetKeys(ctx)
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("GetKeys: %v", err)
					return
				}
				reads.Add(1)
				if msg := wholeSet(k, perSet); msg != "" {
					t.Errorf("reader saw a partial key set (version %d): %s", k.Version, msg)
					return
				}
			}
		})
	}
	defer func() {
		close(stop)
		readers.Wait()
	}()

	for r := range 10 {
		expected := int64(r)
		var wins atomic.Int64
		var winner atomic.Value
		run(workers, func(w int) {
			tag := fmt.Sprintf("r%d-w%d", r, w)
			err := s.UpdateKeys(ctx, expected, keys(tag, perSet))
			switch {
			case err == nil:
				wins.Add(1)
				winner.Store(tag)
			case errors.Is(err, storage.ErrConflict):
			default:
				t.Errorf("UpdateKeys: %v", err)
			}
		})
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d writers won the compare-and-swap on version %d, want exactly 1", r, wins.Load(), expected)
		}
		got, err := s.GetKeys(ctx)
		noErr(t, "GetKeys", err)
		want := keys(winner.Load().(string), perSet)
		want.Version = expected + 1
		mustEqual(t, fmt.Sprintf("round %d key set", r), got, want)
	}
}

// wholeSet says what is wrong with k if it is not one writer's whole set.
func wholeSet(k storage.Keys, n int) string {
	if len(k.VerificationKeys) != n {
		return fmt.Sprintf("%d verification keys, want %d", len(k.VerificationKeys), n)
	}
	// keys() writes {"kid":"TAG",...} and {"kid":"TAG-i"}.
	tag, ok := bytes.CutPrefix(k.SigningKey, []byte(`{"kid":"`))
	if !ok {
		return fmt.Sprintf("signing key %q", k.SigningKey)
	}
	tag, _, _ = bytes.Cut(tag, []byte(`"`))
	for i, v := range k.VerificationKeys {
		if want := fmt.Sprintf(`{"kid":"%s-%d"}`, tag, i); string(v.PublicKey) != want {
			return fmt.Sprintf("verification key %d is %q, want %q", i, v.PublicKey, want)
		}
	}
	return ""
}
