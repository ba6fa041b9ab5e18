package jwtpayload

import (
	"encoding/base64"
	"testing"
	"time"
)

func jwt(payload string) string {
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
}

func TestExpiry(t *testing.T) {
	tests := []struct {
		name, token string
		want        time.Time
		wantErr     bool
	}{
		{"integer", jwt(`{"exp":1700000000}`), time.Unix(1700000000, 0), false},
		{"float", jwt(`{"exp":1700000000.5}`), time.Unix(1700000000, 0), false},
		{"padded", jwt(`{"exp":1}`) + "", time.Unix(1, 0), false},
		{"no exp", jwt(`{"sub":"x"}`), time.Time{}, true},
		{"exp not a number", jwt(`{"exp":"soon"}`), time.Time{}, true},
		{"not json", jwt(`nope`), time.Time{}, true},
		{"one segment", "abc", time.Time{}, true},
		{"two segments", "abc.def", time.Time{}, true},
		{"bad base64", "a.!!!.c", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Expiry(tt.token)
			if (err != nil) != tt.wantErr || !got.Equal(tt.want) {
				t.Fatalf("Expiry = %v, %v", got, err)
			}
		})
	}
}
