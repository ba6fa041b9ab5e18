// Package local is the password connector for local users: Dex's
// staticPasswords from the configuration and, with enablePasswordDB, the
// passwords kept in storage. Its connector id is "local", as in Dex, so
// the "sub" of a local user is the same as Dex gave it.
package local

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
)

// ID is the connector id Dex gives the password database.
const ID = "local"

// User is a static user (Dex's staticPasswords entry).
type User struct {
	Email    string
	Hash     []byte // bcrypt
	Username string
	// Name is the "name" claim; Username when empty, as in Dex.
	Name              string
	PreferredUsername string
	// EmailVerified defaults to true (nil), as in Dex.
	EmailVerified *bool
	UserID        string
	Groups        []string
}

// Connector checks passwords against static users and, when Storage is
// set, the password database.
type Connector struct {
	static  map[string]User
	storage storage.Storage
	// dummy is a valid bcrypt hash, compared against when the user does
	// not exist so that unknown and known users take the same time. Its
	// cost follows the most expensive hash the connector has seen (static
	// users at start, stored users as they are looked up): a fixed cost
	// would make unknown names faster or slower than real ones.
	dummy atomic.Pointer[[]byte]
	mu    sync.Mutex // serialises raising dummy's cost
}

var (
	_ connector.PasswordConnector = (*Connector)(nil)
	_ connector.RefreshConnector  = (*Connector)(nil)
)

// New returns the connector. store may be nil (static users only).
func New(users []User, store storage.Storage) (*Connector, error) {
	c := &Connector{static: map[string]User{}, storage: store}
	for i, u := range users {
		key := strings.ToLower(u.Email)
		if key == "" {
			return nil, fmt.Errorf("staticPasswords[%d].email: must not be empty", i)
		}
		if _, dup := c.static[key]; dup {
			return nil, fmt.Errorf("staticPasswords[%d].email: duplicate %q", i, u.Email)
		}
		if _, err := bcrypt.Cost(u.Hash); err != nil {
			return nil, fmt.Errorf("staticPasswords[%d].hash: not a bcrypt hash (generate one with `htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'`): %w", i, err)
		}
		if u.UserID == "" {
			return nil, fmt.Errorf("staticPasswords[%d].userID: must not be empty", i)
		}
		c.static[key] = u
	}
	cost := 0
	for _, u := range c.static {
		if n, _ := bcrypt.Cost(u.Hash); n > cost {
			cost = n
		}
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if err := c.raiseDummyCost(cost); err != nil {
		return nil, err
	}
	return c, nil
}

// maxDummyCost caps the equaliser's cost: Dex refuses static password
// hashes above cost 16, and a stored hash of absurd cost must not make
// every unknown-name login cost minutes of CPU.
const maxDummyCost = 16

// raiseDummyCost makes the unknown-user hash at least as expensive as a
// hash of the given cost (up to maxDummyCost).
func (c *Connector) raiseDummyCost(cost int) error {
	cost = min(cost, maxDummyCost)
	if d := c.dummy.Load(); d != nil {
		if n, _ := bcrypt.Cost(*d); n >= cost {
			return nil
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dummy.Load(); d != nil {
		if n, _ := bcrypt.Cost(*d); n >= cost {
			return nil
		}
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("gatehouse-timing-equaliser"), cost)
	if err != nil {
		return fmt.Errorf("local: timing-equaliser hash: %w", err)
	}
	c.dummy.Store(&dummy)
	return nil
}

// Prompt labels the username field.
func (c *Connector) Prompt() string { return "Email Address" }

func (c *Connector) lookup(ctx context.Context, email string) (User, bool, error) {
	key := strings.ToLower(strings.TrimSpace(email))
	if u, ok := c.static[key]; ok {
		return u, true, nil
	}
	if c.storage == nil {
		return User{}, false, nil
	}
	p, err := c.storage.GetPassword(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, fmt.Errorf("local: look up %q: %w", key, err)
	}
	return User{Email: p.Email, Hash: p.Hash, Username: p.Username, UserID: p.UserID}, true, nil
}

// Login checks the password (bcrypt, constant time).
func (c *Connector) Login(ctx context.Context, _ connector.Scopes, username, password string) (connector.Identity, bool, error) {
	u, ok, err := c.lookup(ctx, username)
	if err != nil {
		return connector.Identity{}, false, err
	}
	if !ok {
		_ = bcrypt.CompareHashAndPassword(*c.dummy.Load(), []byte(password))
		return connector.Identity{}, false, nil
	}
	if n, err := bcrypt.Cost(u.Hash); err == nil {
		if err := c.raiseDummyCost(n); err != nil {
			return connector.Identity{}, false, err
		}
	}
	if bcrypt.CompareHashAndPassword(u.Hash, []byte(password)) != nil {
		return connector.Identity{}, false, nil
	}
	return identity(u), true, nil
}

// Refresh reloads the user, so a deleted user cannot refresh.
func (c *Connector) Refresh(ctx context.Context, _ connector.Scopes, id connector.Identity) (connector.Identity, error) {
	u, ok, err := c.lookup(ctx, id.Email)
	if err != nil {
		return connector.Identity{}, err
	}
	if !ok || u.UserID != id.UserID {
		return connector.Identity{}, &connector.UserError{Status: 403, Title: "User removed", Message: "this local user no longer exists", Reason: "user_removed"}
	}
	return identity(u), nil
}

// identity is what Dex's password connector returns: Name (or Username)
// as "name", PreferredUsername as set, the email verified unless the entry
// says otherwise, and the entry's groups.
func identity(u User) connector.Identity {
	name := u.Name
	if name == "" {
		name = u.Username
	}
	verified := u.EmailVerified == nil || *u.EmailVerified
	return connector.Identity{
		UserID: u.UserID, Username: name, PreferredUsername: u.PreferredUsername,
		Email: u.Email, EmailVerified: verified, Groups: u.Groups,
	}
}
