package ldap

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
)

// idValue is the user id from idAttr as text that is safe in a token and
// stable for the user:
//
//   - objectGUID (16 bytes): the GUID in Active Directory's own string
//     form (4b2c1a9e-3e7d-4f11-a2b3-c4d5e6f7ff08), as PowerShell shows it;
//   - objectSid: the S-1-5-21-... form;
//   - any other value that is printable UTF-8: the value itself (uid,
//     DN, entryUUID, ...);
//   - other binary values: "b64:" and the value in unpadded base64url.
//
// The choice depends on the attribute and the bytes only, so a user's
// id never changes between logins.
func idValue(e *ldap.Entry, attr string) string {
	vals := values(e, attr)
	if len(vals) == 0 || len(vals[0]) == 0 {
		return ""
	}
	v := vals[0]
	switch {
	case strings.EqualFold(attr, "objectGUID") && len(v) == 16:
		return guidString(v)
	case strings.EqualFold(attr, "objectSid"):
		if s, ok := sidString(v); ok {
			return s
		}
	}
	if printable(v) {
		return string(v)
	}
	return "b64:" + base64.RawURLEncoding.EncodeToString(v)
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

// guidString formats a GUID as Windows does: the first three fields are
// little-endian in the 16 bytes, the last two are bytes in order.
func guidString(b []byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16])
}

// sidString formats a binary security identifier (MS-DTYP 2.4.2):
// revision, sub-authority count, 48-bit big-endian identifier authority,
// then little-endian 32-bit sub-authorities.
func sidString(b []byte) (string, bool) {
	if len(b) < 8 || len(b) != 8+4*int(b[1]) {
		return "", false
	}
	var auth uint64
	for _, x := range b[2:8] {
		auth = auth<<8 | uint64(x)
	}
	var s strings.Builder
	s.WriteString("S-" + strconv.Itoa(int(b[0])) + "-" + strconv.FormatUint(auth, 10))
	for i := 8; i < len(b); i += 4 {
		s.WriteString("-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[i:i+4])), 10))
	}
	return s.String(), true
}
