// Package signin holds what students' sign-in is made of, free of I/O: the
// secrets in links and session cookies, and which sandbox a host names.
//
// A link code or a session token is a prefix and 32 bytes, base64url: 24
// random bytes and the first 8 bytes of an HMAC of them under a key only
// Homeroom holds. The HMAC lets the sign-in check refuse a forged or guessed
// secret without asking the store; the store keeps only the SHA-256 of the
// whole secret, so that reading the store yields no usable link or session.
package signin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"strings"

	"github.com/homeroom/homeroom/pkg/api"
)

// Prefixes tell a link code from a session token: one is never accepted as
// the other.
const (
	LinkPrefix    = "hrl_"
	SessionPrefix = "hrs_"
)

const (
	randomBytes = 24
	macBytes    = 8
	// KeyBytes is the length of the key that signs secrets.
	KeyBytes = 32
)

var encodedLen = base64.RawURLEncoding.EncodedLen(randomBytes + macBytes)

// CookieName is the session cookie's name on a student's host.
const CookieName = "homeroom_session"

// Mint returns a new secret with prefix, signed with key.
func Mint(key []byte, prefix string) string {
	b := make([]byte, randomBytes, randomBytes+macBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	b = append(b, mac(key, prefix, b)...)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Valid reports whether s is a secret of kind prefix signed with key. It
// costs a hash and no store access; a valid one may still be unknown,
// expired or revoked.
func Valid(key []byte, prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || len(rest) != encodedLen {
		return false
	}
	// Strict: the last character's unused bits must be zero, so that one
	// secret has one spelling (and so one hash in the store).
	b, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != randomBytes+macBytes {
		return false
	}
	return hmac.Equal(b[randomBytes:], mac(key, prefix, b[:randomBytes]))
}

func mac(key []byte, prefix string, random []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(prefix))
	h.Write(random)
	return h.Sum(nil)[:macBytes]
}

// Hash is what the store keeps of a secret.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ParseHost returns the class and student whose sandbox host names
// (<student>.<class>.<domain>, with or without a port), or ok false.
func ParseHost(host, domain string) (classID, student string, ok bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	rest, ok := strings.CutSuffix(host, "."+strings.ToLower(domain))
	if !ok {
		return "", "", false
	}
	student, classID, ok = strings.Cut(rest, ".")
	if !ok || api.ValidateID("student id", student) != nil || api.ValidateID("class id", classID) != nil {
		return "", "", false
	}
	return classID, student, true
}
