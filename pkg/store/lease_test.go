package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
)

func TestLease(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	got, err := s.TryAcquire(ctx, "controller", "a", time.Second)
	if err != nil || !got {
		t.Fatalf("first acquire: %v %v", got, err)
	}
	if got, err := s.TryAcquire(ctx, "controller", "b", time.Second); err != nil || got {
		t.Fatalf("b took a lease a holds: %v %v", got, err)
	}
	if got, err := s.TryAcquire(ctx, "controller", "a", time.Second); err != nil || !got {
		t.Fatalf("a could not renew: %v %v", got, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if got, err := s.TryAcquire(ctx, "controller", "b", time.Second); err != nil || !got {
		t.Fatalf("b could not take an expired lease: %v %v", got, err)
	}
	if holder, _, _ := s.LeaseHolder(ctx, "controller"); holder != "b" {
		t.Errorf("holder %q", holder)
	}
	if err := s.Release(ctx, "controller", "a"); err != nil {
		t.Fatal(err)
	}
	if holder, _, _ := s.LeaseHolder(ctx, "controller"); holder != "b" {
		t.Errorf("a released b's lease: holder %q", holder)
	}
	if err := s.Release(ctx, "controller", "b"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TryAcquire(ctx, "controller", "a", time.Minute); err != nil || !got {
		t.Fatalf("a could not take a released lease: %v %v", got, err)
	}
}

func TestLeaseHasOneHolderUnderContention(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	for round := 0; round < 10; round++ {
		name := "race-" + string(rune('a'+round))
		var wg sync.WaitGroup
		var mu sync.Mutex
		winners := 0
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.TryAcquire(ctx, name, string(rune('p'+i)), time.Minute)
				if err != nil {
					t.Error(err)
				}
				if got {
					mu.Lock()
					winners++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if winners != 1 {
			t.Fatalf("round %d: %d holders of one lease", round, winners)
		}
	}
}
