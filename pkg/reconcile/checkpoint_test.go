package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// gatedStore holds the first status write until released, counts writes and
// can fail them.
type gatedStore struct {
	Store
	started chan struct{} // closed when the first write begins
	release chan struct{}
	mu      sync.Mutex
	writes  []api.ClassStatus
	fail    error // returned by writes after the first
}

func (s *gatedStore) UpdateStatus(_ context.Context, id string, version int64, st api.ClassStatus) (*api.Class, error) {
	s.mu.Lock()
	first := len(s.writes) == 0
	s.writes = append(s.writes, st)
	s.mu.Unlock()
	if first {
		close(s.started)
		<-s.release
	} else if s.fail != nil {
		return nil, s.fail
	}
	return &api.Class{ID: id, Version: version + 1, Status: st}, nil
}

// checkpointAll starts one checkpoint, waits until its write is held in the
// store, then starts n-1 more and releases the write once all are queued.
func checkpointAll(t *testing.T, st *gatedStore, n int) (*executor, []error) {
	t.Helper()
	e := &executor{r: &Reconciler{store: st}, class: &api.Class{ID: "c", Version: 1}}
	errs := make([]error, n)
	var wg sync.WaitGroup
	mark := func(i int) {
		defer wg.Done()
		errs[i] = e.checkpoint(context.Background(), func(s *api.ClassStatus) {
			id := fmt.Sprintf("s%02d", i)
			for _, x := range s.Students {
				if x.ID == id {
					return // already there: a checkpoint may be applied again on a retry
				}
			}
			s.Students = append(s.Students, api.StudentStatus{ID: id, State: "collected"})
		})
	}
	wg.Add(n)
	go mark(0)
	<-st.started
	for i := 1; i < n; i++ {
		go mark(i)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		e.qmu.Lock()
		queued := len(e.queue)
		e.qmu.Unlock()
		if queued == n-1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d checkpoints queued", queued, n-1)
		}
	}
	close(st.release)
	wg.Wait()
	return e, errs
}

// TestCheckpointsArrivingTogetherShareAWrite: the checkpoints that arrive
// while a status write is in flight are committed by one more write, each
// caller returning only after a write holding its change.
func TestCheckpointsArrivingTogetherShareAWrite(t *testing.T) {
	const n = 12
	st := &gatedStore{started: make(chan struct{}), release: make(chan struct{})}
	e, errs := checkpointAll(t, st, n)
	for i, err := range errs {
		if err != nil {
			t.Errorf("checkpoint %d: %v", i, err)
		}
	}
	if len(st.writes) != 2 {
		t.Fatalf("%d status writes for %d checkpoints, want 2 (the first alone, then the rest together)", len(st.writes), n)
	}
	if got := len(st.writes[1].Students); got != n {
		t.Errorf("the second write holds %d students, want all %d", got, n)
	}
	if got := len(e.class.Status.Students); got != n {
		t.Errorf("the class holds %d checkpoints, want %d", got, n)
	}
}

// TestCheckpointBatchFailureReachesEveryCaller: no caller of a batch that
// was not written believes its checkpoint stored.
func TestCheckpointBatchFailureReachesEveryCaller(t *testing.T) {
	const n = 6
	down := errors.New("store unreachable")
	st := &gatedStore{started: make(chan struct{}), release: make(chan struct{}), fail: down}
	_, errs := checkpointAll(t, st, n)
	if errs[0] != nil {
		t.Errorf("the first checkpoint was written, yet: %v", errs[0])
	}
	for i := 1; i < n; i++ {
		if !errors.Is(errs[i], down) {
			t.Errorf("checkpoint %d of the failed batch: %v, want the store's error", i, errs[i])
		}
	}
}
