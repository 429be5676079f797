package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

func TestSignInSecretsAreMadeOnce(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	a, err := s.SignInSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.SignInSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.ForwardAuth == "" || len(a.Key) != 32 || a.ForwardAuth != b.ForwardAuth || string(a.Key) != string(b.Key) {
		t.Fatalf("secrets differ between calls or are empty: %+v %+v", a, b)
	}
}

// Links and sessions that can no longer sign anyone in are deleted; the
// rest stay.
func TestPruneSignIns(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	for _, id := range []string{"up", "down"} {
		if _, _, err := s.PutSpec(ctx, id, api.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice", "bob"}}); err != nil {
			t.Fatal(err)
		}
	}
	up, err := s.SetDesiredPhase(ctx, "up", api.PhaseUp)
	if err != nil {
		t.Fatal(err)
	}
	since := *up.UpSince
	now := time.Now().UTC().Truncate(time.Millisecond)
	later := now.Add(time.Hour)
	put := func(class, student, holder, hash string, upSince, expires time.Time) {
		t.Helper()
		l := api.SignInLink{ID: api.LinkID(class, student, holder), ClassID: class, Student: student, Holder: holder,
			Hash: hash, UpSince: upSince, IssuedAt: now, ExpiresAt: expires}
		if err := s.PutLink(ctx, l); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSession(ctx, api.SignInSession{ID: "s-" + hash, ClassID: class, Student: student, Holder: holder,
			LinkHash: hash, UpSince: upSince, CreatedAt: now, ExpiresAt: expires}); err != nil {
			t.Fatal(err)
		}
	}
	put("up", "alice", "", "live", since, later)
	put("up", "alice", "ada", "helper", since, later)
	put("up", "bob", "", "expired", since, now.Add(-time.Second))
	put("up", "carol", "", "off-roster", since, later)
	put("up", "bob", "ada", "earlier-up", since.Add(-time.Hour), later)
	put("down", "alice", "", "class-down", since, later)
	put("gone", "alice", "", "class-gone", since, later)
	// A session of alice's earlier link: its link was issued again.
	if err := s.PutSession(ctx, api.SignInSession{ID: "s-old", ClassID: "up", Student: "alice", LinkHash: "old",
		UpSince: since, CreatedAt: now, ExpiresAt: later}); err != nil {
		t.Fatal(err)
	}

	n, err := s.PruneSignIns(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 11 {
		t.Errorf("pruned %d documents, want 11 (5 links, 6 sessions)", n)
	}
	for _, h := range []string{"live", "helper"} {
		if _, err := s.FindLink(ctx, h); err != nil {
			t.Errorf("link %s: %v", h, err)
		}
		if _, err := s.GetSession(ctx, "s-"+h); err != nil {
			t.Errorf("session %s: %v", h, err)
		}
	}
	for _, h := range []string{"expired", "off-roster", "earlier-up", "class-down", "class-gone"} {
		if _, err := s.FindLink(ctx, h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("link %s left: %v", h, err)
		}
		if _, err := s.GetSession(ctx, "s-"+h); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session %s left: %v", h, err)
		}
	}
	if _, err := s.GetSession(ctx, "s-old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session of a re-issued link is left: %v", err)
	}
}
