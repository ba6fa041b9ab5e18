package tokencache

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// Unlock releases a lock.
type Unlock func() error

// Lock takes the lock of k's entry, waiting up to timeout (0: wait until ctx
// ends) while another process holds it (say, one waiting for the user in
// the browser). The lock file is named like kubelogin's, so gatehouse and
// kubelogin exclude each other too; it holds no secret. The operating
// system drops the lock when a process dies, so a crashed run never
// blocks the next one.
func (s Store) Lock(ctx context.Context, k Key, timeout time.Duration) (Unlock, error) {
	if s.Storage == StorageNone {
		return func() error { return nil }, nil
	}
	if err := s.ensureDir(); err != nil {
		return nil, err
	}
	p := filepath.Join(s.Dir, k.Checksum()+".lock")
	fl := flock.New(p)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Try once at once: the common case is an uncontended lock.
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock token cache %s: %w", p, err)
	}
	if !ok {
		ok, err = fl.TryLockContext(ctx, 20*time.Millisecond)
		if !ok {
			if err == nil || errors.Is(err, context.DeadlineExceeded) {
				return nil, fmt.Errorf("another kubectl-gatehouse (or kubelogin) has held the token cache lock %s for %s; is a login waiting in a browser? (%w)", p, timeout, context.DeadlineExceeded)
			}
			return nil, fmt.Errorf("lock token cache %s: %w", p, err)
		}
	}
	return fl.Unlock, nil
}
