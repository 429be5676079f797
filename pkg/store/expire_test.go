package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

func TestUpSinceAndExpire(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	if _, _, err := s.PutSpec(ctx, "c1", api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"a"}, TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	up, err := s.SetDesiredPhase(ctx, "c1", api.PhaseUp)
	if err != nil {
		t.Fatal(err)
	}
	if up.UpSince == nil || up.ExpiresAt() == nil || !up.ExpiresAt().Equal(up.UpSince.Add(60e9)) {
		t.Fatalf("UpSince %v ExpiresAt %v", up.UpSince, up.ExpiresAt())
	}
	if _, err := s.Expire(ctx, "c1", up.UpSince.Add(-1)); !errors.Is(err, store.ErrNotExpired) {
		t.Errorf("expiring another Up: %v, want ErrNotExpired", err)
	}
	down, err := s.Expire(ctx, "c1", *up.UpSince)
	if err != nil {
		t.Fatal(err)
	}
	if down.DesiredPhase != api.PhaseDown || down.DownReason != api.ReasonTTLExpired || down.Generation != up.Generation+1 {
		t.Errorf("after Expire: %s %q gen %d", down.DesiredPhase, down.DownReason, down.Generation)
	}
	if _, err := s.Expire(ctx, "c1", *up.UpSince); !errors.Is(err, store.ErrNotExpired) {
		t.Errorf("expiring twice: %v", err)
	}
	again, err := s.SetDesiredPhase(ctx, "c1", api.PhaseUp)
	if err != nil {
		t.Fatal(err)
	}
	if again.DownReason != "" || !again.UpSince.After(*up.UpSince) && !again.UpSince.Equal(*up.UpSince) {
		t.Errorf("a new Up: reason %q upSince %v (was %v)", again.DownReason, again.UpSince, up.UpSince)
	}
}
