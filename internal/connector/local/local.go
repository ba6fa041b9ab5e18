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
	// not exist so that unknown and known users take the same time.
	dummy []byte
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
	dummy, err := bcrypt.GenerateFromPassword([]byte("gatehouse-timing-equaliser"), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	c.dummy = dummy
	return c, nil
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
		_ = bcrypt.CompareHashAndPassword(c.dummy, []byte(password))
		return connector.Identity{}, false, nil
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
