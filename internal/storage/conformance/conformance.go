// Package conformance is the test suite that every storage backend passes.
// A backend's test calls Run with a constructor that returns a fresh,
// empty store (closed by a t.Cleanup it registers):
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, func(t *testing.T) storage.Storage {
//			s := memory.New()
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite checks the contract written on storage.Storage: CRUD of every
// object, the error values (matched with errors.Is), expiry, atomic
// updaters under concurrency, the key set's compare-and-swap, listing,
// garbage collection, and that every field round-trips in the canonical
// form (UTC times at microsecond precision, nil for empty slices).
package conformance

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// test is one case of the suite; it gets a fresh store.
type test struct {
	name string
	run  func(t *testing.T, s storage.Storage)
}

// Run runs the whole suite, each case as a subtest on a store of its own
// made by newStorage.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	t.Helper()
	var all []test
	all = append(all, crudTests...)
	all = append(all, concurrencyTests...)
	all = append(all, listAndGCTests...)
	for _, tc := range all {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStorage(t))
		})
	}
}
