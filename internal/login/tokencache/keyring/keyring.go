// Package keyring is the token cache's OS keyring: the same library
// kubelogin uses (github.com/zalando/go-keyring: the Secret Service over
// D-Bus on Linux and BSD, the Keychain on macOS, the Credential Manager on
// Windows), so kubelogin's items and gatehouse's are the same items. It is
// apart from package tokencache so that the one-file plugin's front end,
// which hands keyring runs to the engine, does not link it.
package keyring

import (
	"errors"
	"fmt"

	gokeyring "github.com/zalando/go-keyring"

	"github.com/gatehouse-dev/gatehouse/internal/login/tokencache"
)

// OS is the operating system's keyring.
type OS struct{}

var _ tokencache.Keyring = OS{}

// Get returns the secret, or an error wrapping tokencache.ErrNotFound.
func (OS) Get(service, user string) (string, error) {
	s, err := gokeyring.Get(service, user)
	return s, translate(err)
}

// Set stores the secret.
func (OS) Set(service, user, secret string) error {
	return translate(gokeyring.Set(service, user, secret))
}

// Delete removes the item.
func (OS) Delete(service, user string) error {
	return translate(gokeyring.Delete(service, user))
}

// DeleteAll removes every item of the service.
func (OS) DeleteAll(service string) error {
	return translate(gokeyring.DeleteAll(service))
}

func translate(err error) error {
	if errors.Is(err, gokeyring.ErrNotFound) {
		return fmt.Errorf("%w: %w", tokencache.ErrNotFound, err)
	}
	return err
}
