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
	"strconv"
	"strings"
	"time"

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

// ProbeCookieName is the cookie the controller's readiness check carries
// through Traefik where it cannot reach a sandbox itself (a swarm's overlay
// networks). Its value is a probe token: the sign-in check lets the
// request through to that one student's sandbox, without the cookie, until
// the token expires. It is no session: nothing of it is in the store.
const ProbeCookieName = "homeroom_probe"

const probePrefix = "hrp_"

// ProbeTTL is how long a probe token is good for: long enough for the
// controller's and the apiserver's clocks to differ a little, short enough
// that a token seen by anyone is soon worthless.
const ProbeTTL = 2 * time.Minute

// MintProbe returns a probe token for the sandbox of classID/student, good
// until until, signed with key.
func MintProbe(key []byte, classID, student string, until time.Time) string {
	exp := strconv.FormatInt(until.Unix(), 10)
	return probePrefix + exp + "." + base64.RawURLEncoding.EncodeToString(probeMAC(key, classID, student, exp))
}

// ValidProbe reports whether token lets a request through to the sandbox
// of classID/student at now: signed with key for that sandbox, not
// expired, and not good for longer than tokens are minted for.
func ValidProbe(key []byte, classID, student, token string, now time.Time) bool {
	rest, ok := strings.CutPrefix(token, probePrefix)
	if !ok {
		return false
	}
	exp, sig, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	until, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || strconv.FormatInt(until, 10) != exp || now.Unix() > until || until-now.Unix() > int64(2*ProbeTTL/time.Second) {
		return false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	return err == nil && hmac.Equal(b, probeMAC(key, classID, student, exp))
}

func probeMAC(key []byte, classID, student, exp string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(probePrefix + classID + "/" + student + "/" + exp))
	return h.Sum(nil)
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
