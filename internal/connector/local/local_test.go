package local

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/gatehouse-dev/gatehouse/internal/connector"
	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/storage/memory"
)

func hashAt(t *testing.T, pw string, cost int) []byte {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func dummyCost(t *testing.T, c *Connector) int {
	t.Helper()
	n, err := bcrypt.Cost(*c.dummy.Load())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestUnknownUserCostsLikeKnownOnes: the hash compared for an unknown
// name is as expensive as the most expensive real hash the connector has
// seen, so response time does not tell whether a name exists.
func TestUnknownUserCostsLikeKnownOnes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		staticCosts []int
		storedCost  int // 0: no stored user
		wantStart   int
		wantAfter   int // after the stored user logged in
	}{
		{name: "no users: bcrypt's default", wantStart: bcrypt.DefaultCost, wantAfter: bcrypt.DefaultCost},
		{name: "cheap static users", staticCosts: []int{bcrypt.MinCost, 5}, wantStart: 5, wantAfter: 5},
		{name: "expensive static user", staticCosts: []int{bcrypt.MinCost, 7}, wantStart: 7, wantAfter: 7},
		{name: "a stored user raises it", staticCosts: []int{bcrypt.MinCost}, storedCost: 6, wantStart: bcrypt.MinCost, wantAfter: 6},
		{name: "a cheaper stored user does not lower it", staticCosts: []int{6}, storedCost: bcrypt.MinCost, wantStart: 6, wantAfter: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var users []User
			for i, cost := range tt.staticCosts {
				users = append(users, User{Email: string(rune('a'+i)) + "@example.com", Hash: hashAt(t, "pw", cost), UserID: string(rune('a' + i))})
			}
			store := memory.New()
			if tt.storedCost > 0 {
				if err := store.CreatePassword(ctx, storage.Password{Email: "stored@example.com", Hash: hashAt(t, "pw", tt.storedCost), UserID: "s", Username: "stored"}); err != nil {
					t.Fatal(err)
				}
			}
			c, err := New(users, store)
			if err != nil {
				t.Fatal(err)
			}
			if got := dummyCost(t, c); got != tt.wantStart {
				t.Errorf("at start: cost %d, want %d", got, tt.wantStart)
			}
			if _, ok, err := c.Login(ctx, connector.Scopes{}, "nobody@example.com", "pw"); ok || err != nil {
				t.Fatalf("unknown user: ok=%v err=%v", ok, err)
			}
			if tt.storedCost > 0 {
				if _, ok, err := c.Login(ctx, connector.Scopes{}, "stored@example.com", "pw"); !ok || err != nil {
					t.Fatalf("stored user: ok=%v err=%v", ok, err)
				}
			}
			if got := dummyCost(t, c); got != tt.wantAfter {
				t.Errorf("after logins: cost %d, want %d", got, tt.wantAfter)
			}
		})
	}
}
