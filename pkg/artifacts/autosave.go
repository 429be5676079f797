package artifacts

import (
	"context"
	"errors"
	"fmt"

	"github.com/minio/minio-go/v7"
)

// DeleteAutosave removes every object of an autosave run once a later one
// is complete: an autosave is a checkpoint, and only the latest is kept.
// It refuses a run whose index is not of kind autosave (or is missing), so
// that a Down's run can never be deleted by mistake.
func (s *Store) DeleteAutosave(ctx context.Context, classID, runID string) error {
	idx, err := s.GetRunIndex(ctx, classID, runID)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("artifacts: delete autosave %s of %s: no run index, left alone", runID, classID)
	}
	if err != nil {
		return err
	}
	if idx.Kind != RunKindAutosave {
		return fmt.Errorf("artifacts: run %s of %s is a %s run, not an autosave: left alone", runID, classID, idx.KindOrDown())
	}
	keys, err := s.ListKeys(ctx, runPrefix(classID, runID))
	if err != nil {
		return err
	}
	// The index goes last: a deletion interrupted part-way is still a run
	// of kind autosave, deleted again by the next attempt.
	index := RunIndexKey(classID, runID)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	for _, batch := range [][]string{without(keys, index), {index}} {
		objs := make(chan minio.ObjectInfo, len(batch))
		for _, k := range batch {
			objs <- minio.ObjectInfo{Key: k}
		}
		close(objs)
		for e := range s.client.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
			if e.Err != nil && !isNotFound(e.Err) {
				return fmt.Errorf("artifacts: delete %s: %w", e.ObjectName, e.Err)
			}
		}
	}
	return nil
}

func without(keys []string, drop string) []string {
	out := keys[:0:0]
	for _, k := range keys {
		if k != drop {
			out = append(out, k)
		}
	}
	return out
}

// Kinds of run. A run index without a kind is a Down's.
const (
	RunKindDown     = "down"
	RunKindAutosave = "autosave"
	// RunKindStudent is one student's collection on a teacher's request
	// (an early hand-in).
	RunKindStudent = "student"
	// RunKindLate is one student's late hand-in after a Down.
	RunKindLate = "late"
	// RunKindRecovered is the work volumes one student's sandbox left on a
	// lost swarm node, collected once the node was back.
	RunKindRecovered = "recovered"
)

// KindOrDown is the run's kind, RunKindDown when the index has none.
func (idx *RunIndex) KindOrDown() string {
	if idx.Kind == "" {
		return RunKindDown
	}
	return idx.Kind
}
