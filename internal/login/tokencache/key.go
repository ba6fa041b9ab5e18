package tokencache

import (
	"crypto/sha256"
	"encoding/hex"
)

// Key identifies one cache entry. Its fields and their order are
// kubelogin's (pkg/tokencache.Key at v1.36.3), and Checksum computes the
// same file name kubelogin does, so a user who switches keeps the tokens
// kubelogin cached (and the two tools share one lock per entry).
type Key struct {
	IssuerURL      string
	ClientID       string
	ClientSecret   string
	ExtraScopes    []string
	RedirectURL    string
	PKCEMethod     int // kubelogin's enum: 0 auto, 1 no, 2 S256
	UseAccessToken bool
	RequestHeaders Pairs

	CACertFilename []string
	CACertData     []string
	SkipTLSVerify  bool
	Renegotiation  int // crypto/tls.RenegotiationSupport

	Username               string
	AuthRequestExtraParams Pairs

	// Exchange names a token obtained by token exchange (RFC 8693): a
	// gatehouse extension that kubelogin does not have. Its zero value
	// leaves the checksum kubelogin's.
	Exchange Exchange
}

// Exchange is the part of a key that says which exchanged token an entry
// holds: one entry per cluster audience, or per CI subject token.
type Exchange struct {
	// Audience is the client ID the token was exchanged for
	// (--exchange-audience).
	Audience string
	// ConnectorID is the upstream connector that verified a CI subject
	// token (--connector-id).
	ConnectorID string
	// Subject is a digest of where the CI subject token came from (see
	// options.Flags.TokenKey): a cached token serves only the job, file or
	// variable it was exchanged for.
	Subject string
}

// Pairs are the entries of one of kubelogin's map flags
// (--oidc-request-header, --oidc-auth-request-extra-params) in the order
// kubelogin's gob encoding writes them most often: the order in which the
// keys first appear on the command line (see Checksum). nil is kubelogin's
// nil map (left out of the encoding); an empty non-nil Pairs is an empty
// map (written, with no entries).
type Pairs []Pair

// Pair is one key=value entry.
type Pair struct{ Key, Value string }

// With returns p with k set to v: in its place if k is there, else
// appended (how a Go map built in that order keeps its first slot).
func (p Pairs) With(k, v string) Pairs {
	for i := range p {
		if p[i].Key == k {
			p[i].Value = v
			return p
		}
	}
	return append(p, Pair{k, v})
}

// Map returns the entries as a map (nil for nil).
func (p Pairs) Map() map[string]string {
	if p == nil {
		return nil
	}
	m := make(map[string]string, len(p))
	for _, kv := range p {
		m[kv.Key] = kv.Value
	}
	return m
}

// gobTypes is the type section that encoding/gob writes before the first
// value of kubelogin's tokencache.Key: it depends only on the struct's
// shape. kubelogin hashes a fresh gob stream, so every checksum starts with
// these bytes. We write the stream by hand because importing encoding/gob
// costs about 0.4 ms of init at every start of the plugin (measured with
// GODEBUG=inittrace=1), which is a third of a warm get-token. The test
// checks this encoder against encoding/gob for many keys.
const gobTypes = "\\\x7f\x03\x01\x01\x03Key\x01\xff\x80\x00\x01\x04\x01\bProvider\x01\xff\x82\x00\x01\x0fTLSClientConfig\x01\xff\x88\x00\x01\bUsername\x01\f\x00\x01\x16AuthRequestExtraParams\x01\xff\x86\x00\x00\x00" +
	"\xff\x99\xff\x81\x03\x01\x01\bProvider\x01\xff\x82\x00\x01\b\x01\tIssuerURL\x01\f\x00\x01\bClientID\x01\f\x00\x01\fClientSecret\x01\f\x00\x01\vExtraScopes\x01\xff\x84\x00\x01\vRedirectURL\x01\f\x00\x01\nPKCEMethod\x01\x04\x00\x01\x0eUseAccessToken\x01\x02\x00\x01\x0eRequestHeaders\x01\xff\x86\x00\x00\x00" +
	"\x16\xff\x83\x02\x01\x01\b[]string\x01\xff\x84\x00\x01\f\x00\x00" +
	"!\xff\x85\x04\x01\x01\x11map[string]string\x01\xff\x86\x00\x01\f\x01\f\x00\x00" +
	"\\\xff\x87\x03\x01\x01\x06Config\x01\xff\x88\x00\x01\x04\x01\x0eCACertFilename\x01\xff\x84\x00\x01\nCACertData\x01\xff\x84\x00\x01\rSkipTLSVerify\x01\x02\x00\x01\rRenegotiation\x01\x04\x00\x00\x00"

// Checksum is the entry's file name: the hex SHA-256 of the key's gob
// encoding, as kubelogin computes it. As in gob, a nil map is left out and
// an empty one is not.
//
// gob writes a map in Go's map iteration order, which is random, so
// kubelogin's own name for a key whose map flag has two or more entries
// changes from run to run (kubelogin issue #1638). It is not uniform,
// though: pflag builds the map in command-line order, and iterating a Go
// map of up to 8 entries starts at a random one of its 8 slots and wraps
// around, so kubelogin writes the entries in command-line order in (9-n)/8
// of its runs (7 in 8 for two entries) and in one of the other n-1
// rotations of that order otherwise. Checksum always writes the
// command-line order: the name kubelogin uses most, so the entries
// kubelogin cached are found after a switch. With more than 8 entries
// kubelogin's order follows the map's random hash seed and has no most
// likely value; Checksum still writes the command-line order.
func (k Key) Checksum() string {
	var e gobEncoder
	// Key struct value.
	e.field(1) // Provider
	e.str(1, k.IssuerURL)
	e.str(1, k.ClientID)
	e.str(1, k.ClientSecret)
	e.strs(1, k.ExtraScopes)
	e.str(1, k.RedirectURL)
	e.int(1, int64(k.PKCEMethod))
	e.bool(1, k.UseAccessToken)
	e.strmap(1, k.RequestHeaders)
	e.end()
	e.field(1) // TLSClientConfig
	e.strs(1, k.CACertFilename)
	e.strs(1, k.CACertData)
	e.bool(1, k.SkipTLSVerify)
	e.int(1, int64(k.Renegotiation))
	e.end()
	e.str(1, k.Username)
	e.strmap(1, k.AuthRequestExtraParams)
	e.end()

	var msg []byte
	body := e.buf
	msg = appendUint(msg, uint64(len(body)+2)) // + the type id 0xff80
	msg = append(msg, 0xff, 0x80)
	msg = append(msg, body...)

	h := sha256.New()
	h.Write([]byte(gobTypes))
	h.Write(msg)
	if k.Exchange != (Exchange{}) {
		// After the gob stream, which kubelogin never extends, so no
		// kubelogin key hashes to an exchange key's name. Each field is
		// length-prefixed, so no two exchange keys share a stream.
		var x []byte
		x = append(x, exchangeTag...)
		for _, f := range []string{k.Exchange.Audience, k.Exchange.ConnectorID, k.Exchange.Subject} {
			x = appendUint(x, uint64(len(f)))
			x = append(x, f...)
		}
		h.Write(x)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// exchangeTag starts the exchange part of a key's hashed stream.
const exchangeTag = "\x00gatehouse token exchange\x00"

// gobEncoder writes gob's struct encoding: each present field as the delta
// from the previous field number, then its value; zero values are left out
// and the struct ends with a 0.
type gobEncoder struct {
	buf     []byte
	pending uint64 // field delta not yet written
}

func (e *gobEncoder) skip(delta uint64) { e.pending += delta }

func (e *gobEncoder) field(delta uint64) {
	e.buf = appendUint(e.buf, e.pending+delta)
	e.pending = 0
}

func (e *gobEncoder) end() {
	e.buf = append(e.buf, 0)
	e.pending = 0
}

func (e *gobEncoder) str(delta uint64, s string) {
	if s == "" {
		e.skip(delta)
		return
	}
	e.field(delta)
	e.buf = appendUint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *gobEncoder) strs(delta uint64, ss []string) {
	if len(ss) == 0 {
		e.skip(delta)
		return
	}
	e.field(delta)
	e.buf = appendUint(e.buf, uint64(len(ss)))
	for _, s := range ss {
		e.buf = appendUint(e.buf, uint64(len(s)))
		e.buf = append(e.buf, s...)
	}
}

func (e *gobEncoder) strmap(delta uint64, m Pairs) {
	if m == nil { // gob leaves out a nil map but sends an empty one
		e.skip(delta)
		return
	}
	e.field(delta)
	e.buf = appendUint(e.buf, uint64(len(m)))
	for _, kv := range m {
		e.buf = appendUint(e.buf, uint64(len(kv.Key)))
		e.buf = append(e.buf, kv.Key...)
		e.buf = appendUint(e.buf, uint64(len(kv.Value)))
		e.buf = append(e.buf, kv.Value...)
	}
}

func (e *gobEncoder) int(delta uint64, i int64) {
	if i == 0 {
		e.skip(delta)
		return
	}
	e.field(delta)
	var u uint64
	if i < 0 {
		u = uint64(^i<<1) | 1
	} else {
		u = uint64(i << 1)
	}
	e.buf = appendUint(e.buf, u)
}

func (e *gobEncoder) bool(delta uint64, b bool) {
	if !b {
		e.skip(delta)
		return
	}
	e.field(delta)
	e.buf = append(e.buf, 1)
}

// appendUint is gob's unsigned integer: one byte below 128, else the
// negated byte count followed by the big-endian bytes.
func appendUint(b []byte, x uint64) []byte {
	if x < 0x80 {
		return append(b, byte(x))
	}
	var tmp [8]byte
	n := 0
	for v := x; v > 0; v >>= 8 {
		n++
	}
	for i := 0; i < n; i++ {
		tmp[i] = byte(x >> (8 * (n - 1 - i)))
	}
	b = append(b, byte(-n))
	return append(b, tmp[:n]...)
}
