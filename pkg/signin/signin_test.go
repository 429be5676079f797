package signin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/signin"
)

func TestMintedSecretsAreValidOnlyUnderTheirKeyAndKind(t *testing.T) {
	key := []byte(strings.Repeat("k", signin.KeyBytes))
	other := []byte(strings.Repeat("o", signin.KeyBytes))
	s := signin.Mint(key, signin.LinkPrefix)
	if !signin.Valid(key, signin.LinkPrefix, s) {
		t.Fatalf("%s is not valid under its own key", s)
	}
	if s2 := signin.Mint(key, signin.LinkPrefix); s2 == s {
		t.Error("two secrets minted alike")
	}
	flipped := []byte(s)
	flipped[len(flipped)-1] ^= 1
	for name, bad := range map[string]string{
		"another key":      "",
		"a session prefix": signin.SessionPrefix + strings.TrimPrefix(s, signin.LinkPrefix),
		"one byte flipped": string(flipped),
		"truncated":        s[:len(s)-1],
		"extended":         s + "A",
		"empty":            signin.LinkPrefix,
		"not base64":       signin.LinkPrefix + strings.Repeat("!", len(s)-len(signin.LinkPrefix)),
	} {
		k := key
		if name == "another key" {
			k, bad = other, s
		}
		if signin.Valid(k, signin.LinkPrefix, bad) {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
	if signin.Hash(s) == signin.Hash(s[:len(s)-1]+"B") || len(signin.Hash(s)) != 64 {
		t.Error("hash")
	}
}

func TestParseHost(t *testing.T) {
	for _, tc := range []struct {
		host, class, student string
		ok                   bool
	}{
		{"alice.cs101-a.lab.localhost", "cs101-a", "alice", true},
		{"alice.cs101-a.lab.localhost:8080", "cs101-a", "alice", true},
		{"ALICE.CS101-A.LAB.LOCALHOST.", "cs101-a", "alice", true},
		{"lab.localhost", "", "", false},
		{"cs101-a.lab.localhost", "", "", false},
		{"x.alice.cs101-a.lab.localhost", "", "", false},
		{"alice.cs101-a.lab.localhost.evil.test", "", "", false},
		{"alice.cs101-a.evil-lab.localhost", "", "", false},
		{"-a.cs101.lab.localhost", "", "", false},
		{"", "", "", false},
	} {
		class, student, ok := signin.ParseHost(tc.host, "lab.localhost")
		if class != tc.class || student != tc.student || ok != tc.ok {
			t.Errorf("%q: %q %q %v, want %q %q %v", tc.host, class, student, ok, tc.class, tc.student, tc.ok)
		}
	}
}

// A probe token lets through to one sandbox, under its key, until it
// expires; nothing else passes: another sandbox, another key, a token
// changed in any way, expired, or good for longer than tokens are minted.
func TestProbeTokensAreForOneSandboxAndExpire(t *testing.T) {
	key := []byte(strings.Repeat("k", signin.KeyBytes))
	other := []byte(strings.Repeat("o", signin.KeyBytes))
	now := time.Unix(1_800_000_000, 0)
	tok := signin.MintProbe(key, "cs101", "alice", now.Add(signin.ProbeTTL))
	if !signin.ValidProbe(key, "cs101", "alice", tok, now) || !signin.ValidProbe(key, "cs101", "alice", tok, now.Add(signin.ProbeTTL)) {
		t.Fatalf("%s is not valid for its sandbox until it expires", tok)
	}
	flipped := []byte(tok)
	flipped[len(flipped)-2] ^= 1
	exp, _, _ := strings.Cut(strings.TrimPrefix(tok, "hrp_"), ".")
	for name, c := range map[string]struct {
		key                   []byte
		class, student, token string
		at                    time.Time
	}{
		"another student":         {key, "cs101", "bob", tok, now},
		"another class":           {key, "cs102", "alice", tok, now},
		"another key":             {other, "cs101", "alice", tok, now},
		"expired":                 {key, "cs101", "alice", tok, now.Add(signin.ProbeTTL + time.Second)},
		"one byte flipped":        {key, "cs101", "alice", string(flipped), now},
		"a later expiry":          {key, "cs101", "alice", strings.Replace(tok, exp, exp[:len(exp)-1]+"9", 1), now},
		"too long-lived":          {key, "cs101", "alice", signin.MintProbe(key, "cs101", "alice", now.Add(3*signin.ProbeTTL)), now},
		"a session token":         {key, "cs101", "alice", signin.Mint(key, signin.SessionPrefix), now},
		"empty":                   {key, "cs101", "alice", "", now},
		"no signature":            {key, "cs101", "alice", "hrp_" + exp, now},
		"an expiry with a + sign": {key, "cs101", "alice", strings.Replace(tok, exp, "+"+exp, 1), now},
	} {
		if signin.ValidProbe(c.key, c.class, c.student, c.token, c.at) {
			t.Errorf("%s: %q passes", name, c.token)
		}
	}
}
