package artifacts

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// RunIndexSchemaVersion is the run index format written by this package.
const RunIndexSchemaVersion = 1

// Outcomes of a student in a run index.
const (
	// OutcomeCollected: the student's manifest of the run is stored.
	OutcomeCollected = "collected"
	// OutcomeMissing: there is no manifest of the run for the student.
	OutcomeMissing = "missing"
	// OutcomeIncomplete: the manifest is stored, but something the
	// template's rules would have kept was not collected (see IsLoss).
	OutcomeIncomplete = "incomplete"
)

// RunIndexName is the run index's name under the run prefix. It cannot be
// taken for a student prefix: it is an object, and has a dot.
const RunIndexName = "index.json"

// RunIndex is written when a Down run completes, at RunIndexKey; graders
// read it first. Its presence marks the run complete.
type RunIndex struct {
	SchemaVersion int    `json:"schemaVersion"`
	ClassID       string `json:"classId"`
	RunID         string `json:"runId"`
	// Subject is the class's subject when the run was made; reads of the
	// run are authorized against it.
	Subject string `json:"subject,omitempty"`
	// Kind is RunKindAutosave for an autosave, RunKindStudent for a hand-in,
	// RunKindLate for a late hand-in;
	// a Down's run has none
	// (indexes written before kinds existed are all Downs).
	Kind        string       `json:"kind,omitempty"`
	StartedAt   time.Time    `json:"startedAt"`
	CompletedAt time.Time    `json:"completedAt"`
	Students    []RunStudent `json:"students"`
}

// RunStudent is one student's outcome in a run, taken from their manifest.
type RunStudent struct {
	StudentID string `json:"studentId"`
	// Outcome is OutcomeCollected, OutcomeIncomplete or OutcomeMissing.
	Outcome string `json:"outcome"`
	// Manifest is the manifest's key when collected.
	Manifest string `json:"manifest,omitempty"`
	Files    int    `json:"files"`
	// Bytes is the manifest's totalBytes: the files, not the log.
	Bytes    int64 `json:"bytes"`
	ExitCode *int  `json:"exitCode,omitempty"`
	// State is the container's state when collected.
	State     string `json:"state,omitempty"`
	Truncated bool   `json:"truncated,omitempty"`
	// Skipped counts the entries that were not collected, including those
	// the manifest only counts.
	Skipped int `json:"skipped"`
}

// RunIndexKey is where the index of a run is stored.
func RunIndexKey(classID, runID string) string { return runPrefix(classID, runID) + RunIndexName }

// RunInfo is what a run index records of the run beyond its students.
type RunInfo struct {
	Subject string
	// Kind is RunKindAutosave for an autosave, RunKindStudent for a hand-in,
	// RunKindLate for a late hand-in, empty for a Down.
	Kind string
}

// WriteRunIndex reads the manifest of each student of the run and writes the
// index at RunIndexKey. The students are those named (the roster) and any
// other student with a prefix in the run, such as one removed from the
// roster while Up and collected all the same; a student without a manifest
// is listed as OutcomeMissing. Students are sorted by id. Writing again
// replaces the index with one read afresh, so the call is idempotent.
func (s *Store) WriteRunIndex(ctx context.Context, classID, runID string, students []string, startedAt, completedAt time.Time, info RunInfo) (*RunIndex, error) {
	if err := checkIDs(classID, students...); err != nil {
		return nil, err
	}
	if err := checkSegment("run", runID); err != nil {
		return nil, err
	}
	stored, err := s.runStudents(ctx, classID, runID)
	if err != nil {
		return nil, err
	}
	ids := slices.Clone(students)
	for _, st := range stored {
		// Only prefixes that are student ids: anything else was not
		// written by a collection.
		if api.ValidateID("student", st) == nil {
			ids = append(ids, st)
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	idx := &RunIndex{
		SchemaVersion: RunIndexSchemaVersion,
		ClassID:       classID,
		RunID:         runID,
		Subject:       info.Subject,
		Kind:          info.Kind,
		StartedAt:     startedAt.UTC(),
		CompletedAt:   completedAt.UTC(),
		Students:      make([]RunStudent, len(ids)),
	}
	err = parallel(ctx, len(ids), func(i int) error {
		st := RunStudent{StudentID: ids[i], Outcome: OutcomeMissing}
		m, err := s.GetManifest(ctx, classID, runID, ids[i])
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			st.Outcome = OutcomeCollected
			st.Manifest = ManifestKey(api.ArtifactPrefix(classID, runID, ids[i]))
			st.Files = len(m.Files)
			st.Bytes = m.TotalBytes
			st.ExitCode = m.Container.ExitCode
			st.State = m.Container.State
			// Manifests stored without Finish may lack the flag.
			st.Truncated = m.Truncated || hasSizeCap(m.Skipped)
			st.Skipped = skippedCount(m.Skipped)
			if m.Incomplete || slices.ContainsFunc(m.Skipped, func(sk Skipped) bool { return IsLoss(sk.Reason) }) {
				st.Outcome = OutcomeIncomplete
			}
		}
		idx.Students[i] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: index run %s of class %s: %w", runID, classID, err)
	}
	if _, err := s.PutJSON(ctx, RunIndexKey(classID, runID), idx); err != nil {
		return nil, err
	}
	return idx, nil
}

// GetRunIndex reads the index of a run; ErrNotFound is wrapped when the run
// is unknown or has not completed.
func (s *Store) GetRunIndex(ctx context.Context, classID, runID string) (*RunIndex, error) {
	if err := checkIDs(classID); err != nil {
		return nil, err
	}
	if err := checkSegment("run", runID); err != nil {
		return nil, err
	}
	var idx RunIndex
	if err := s.GetJSON(ctx, RunIndexKey(classID, runID), &idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

// RunSummary is one run of a class as listed.
type RunSummary struct {
	RunID string `json:"runId"`
	// Subject is the run's, as RunSubject says.
	Subject string `json:"subject,omitempty"`
	// Kind is "down", "autosave", "student" or "late", once the run is
	// complete.
	Kind string `json:"kind,omitempty"`
	// Students is the number of students in the run's index when complete,
	// otherwise the number of student prefixes stored so far.
	Students int `json:"students"`
	// Complete says that the run's index is stored.
	Complete    bool       `json:"complete"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

// ListRuns returns the runs of a class, oldest first (run ids sort by time).
// A class without runs has none, whether or not it exists.
func (s *Store) ListRuns(ctx context.Context, classID string) ([]RunSummary, error) {
	if err := checkIDs(classID); err != nil {
		return nil, err
	}
	runs, err := s.runIDs(ctx, classID)
	if err != nil {
		return nil, err
	}
	out := make([]RunSummary, len(runs))
	err = parallel(ctx, len(runs), func(i int) error {
		keys, dirs, err := s.listDir(ctx, runPrefix(classID, runs[i]))
		if err != nil {
			return err
		}
		sum := RunSummary{RunID: runs[i], Students: len(dirs)}
		if slices.Contains(keys, RunIndexKey(classID, runs[i])) {
			idx, err := s.GetRunIndex(ctx, classID, runs[i])
			switch {
			case errors.Is(err, ErrNotFound):
				// Deleted between the listing and the read.
			case err != nil:
				return err
			default:
				completed := idx.CompletedAt
				sum.Subject = idx.Subject
				sum.Students, sum.Complete, sum.CompletedAt = len(idx.Students), true, &completed
				sum.Kind = idx.KindOrDown()
			}
		}
		if !sum.Complete {
			if sum.Subject, err = s.manifestsSubject(ctx, classID, runs[i], dirs); err != nil {
				return err
			}
		}
		out[i] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: list runs of class %s: %w", classID, err)
	}
	return out, nil
}

// RunSubject is the subject a run was recorded under, which decides who may
// read it: its index's, or for a run without an index yet (still
// collecting), the subject its stored manifests agree on. It is "" when
// nothing records one (a run indexed before subjects were recorded, an
// orphan's collection, manifests that disagree), and wraps ErrNotFound when
// nothing is stored under the run.
func (s *Store) RunSubject(ctx context.Context, classID, runID string) (string, error) {
	if err := checkIDs(classID); err != nil {
		return "", err
	}
	if err := checkSegment("run", runID); err != nil {
		return "", err
	}
	keys, dirs, err := s.listDir(ctx, runPrefix(classID, runID))
	if err != nil {
		return "", err
	}
	if len(keys) == 0 && len(dirs) == 0 {
		return "", fmt.Errorf("artifacts: run %s of class %s: %w", runID, classID, ErrNotFound)
	}
	if slices.Contains(keys, RunIndexKey(classID, runID)) {
		idx, err := s.GetRunIndex(ctx, classID, runID)
		if err == nil {
			return idx.Subject, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", err
		}
		// Deleted between the listing and the read: the manifests decide.
	}
	return s.manifestsSubject(ctx, classID, runID, dirs)
}

// manifestsSubject is the subject the manifests under a run's student
// prefixes (dirs, as listed) agree on, or "" when none has one or they
// disagree (the class's subject was changed while the run collected).
func (s *Store) manifestsSubject(ctx context.Context, classID, runID string, dirs []string) (string, error) {
	subjects := make([]string, len(dirs))
	found := make([]bool, len(dirs))
	err := parallel(ctx, len(dirs), func(i int) error {
		m, err := s.GetManifest(ctx, classID, runID, lastSegment(dirs[i]))
		switch {
		case errors.Is(err, ErrNotFound):
			return nil // still collecting
		case err != nil:
			return err
		}
		subjects[i], found[i] = m.Subject, true
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("artifacts: subject of run %s of class %s: %w", runID, classID, err)
	}
	subject, first := "", true
	for i, ok := range found {
		switch {
		case !ok:
		case first:
			subject, first = subjects[i], false
		case subjects[i] != subject:
			return "", nil
		}
	}
	return subject, nil
}
