package artifacts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// SchemaVersion is the manifest format written by this package.
const SchemaVersion = 1

// manifestParallel bounds how many manifests ListClass fetches at once.
const manifestParallel = 8

// Manifest is what graders rely on: one per student per run, at
// ManifestKey(api.ArtifactPrefix(classId, runId, studentId)), written after
// every object it lists was uploaded. A student prefix without a manifest is
// a collection that did not finish and is ignored by readers.
type Manifest struct {
	SchemaVersion int    `json:"schemaVersion"`
	ClassID       string `json:"classId"`
	// Subject is the class's subject when collected: reads of the run are
	// authorized against it, not against whatever subject the class id has
	// later. Empty for an orphan's collection (its class is gone).
	Subject     string        `json:"subject,omitempty"`
	StudentID   string        `json:"studentId"`
	RunID       string        `json:"runId"`
	Template    string        `json:"template"`
	Image       string        `json:"image"`
	Container   ContainerInfo `json:"container"`
	CollectedAt time.Time     `json:"collectedAt"`
	Files       []File        `json:"files"`
	// Logs is the container log at LogsKey(prefix); its Path is relative to
	// the student prefix ("logs/container.log").
	Logs    *File     `json:"logs,omitempty"`
	Skipped []Skipped `json:"skipped,omitempty"`
	// TotalBytes is the size of Files together; the log is not counted, as
	// the template's collect cap does not apply to it.
	TotalBytes int64 `json:"totalBytes"`
	// Truncated says that the collection is incomplete because of the
	// template's size cap: at least one file or collect path was skipped
	// with ReasonSizeCap.
	Truncated bool `json:"truncated,omitempty"`
	// Incomplete says that something the template's rules would have kept
	// was not collected: a skipped entry has a reason for which IsLoss holds.
	Incomplete bool `json:"incomplete,omitempty"`
}

// ContainerInfo is the student container as it was when collected.
type ContainerInfo struct {
	Name       string     `json:"name"`
	ID         string     `json:"id"`
	State      string     `json:"state"`
	ExitCode   *int       `json:"exitCode,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// ManifestKey is where the manifest of a student prefix is stored.
func ManifestKey(prefix string) string { return prefix + "manifest.json" }

// LogsPath is the container log's path relative to a student prefix.
const LogsPath = "logs/container.log"

// LogsKey is where the container log of a student prefix is stored.
func LogsKey(prefix string) string { return prefix + LogsPath }

// Prefix is the student prefix the manifest describes.
func (m *Manifest) Prefix() string { return api.ArtifactPrefix(m.ClassID, m.RunID, m.StudentID) }

// Objects lists what the manifest records, for Verify.
func (m *Manifest) Objects() []Object {
	objs := make([]Object, 0, len(m.Files)+1)
	for _, f := range m.Files {
		objs = append(objs, f.Object())
	}
	if m.Logs != nil {
		objs = append(objs, m.Logs.Object())
	}
	return objs
}

// UploadLogs streams a container log (size -1 if unknown) to LogsKey(prefix).
func (s *Store) UploadLogs(ctx context.Context, prefix string, r io.Reader, size int64) (*File, error) {
	f, err := putLogs(ctx, s, prefix, r, size)
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// putLogs stores a log at LogsKey(prefix), as the manifest lists it.
func putLogs(ctx context.Context, objs Objects, prefix string, r io.Reader, size int64) (File, error) {
	obj, err := objs.PutStream(ctx, LogsKey(prefix), r, size, "text/plain; charset=utf-8")
	if err != nil {
		return File{}, err
	}
	return File{Path: LogsPath, Key: obj.Key, Size: obj.Size, SHA256: obj.SHA256}, nil
}

// Finish completes a manifest before it is stored: it sets SchemaVersion,
// recomputes TotalBytes from Files, sets Truncated if any skipped entry has
// ReasonSizeCap (a Truncated the collector set stays set), and turns a nil
// Files into an empty list, so that graders read "files": [] rather than
// null. PutManifest calls it; a collector that stores the manifest itself
// with PutJSON at ManifestKey must call Finish first.
func (m *Manifest) Finish() {
	m.SchemaVersion = SchemaVersion
	m.TotalBytes = 0
	for _, f := range m.Files {
		m.TotalBytes += f.Size
	}
	if hasSizeCap(m.Skipped) {
		m.Truncated = true
	}
	for _, sk := range m.Skipped {
		if IsLoss(sk.Reason) {
			m.Incomplete = true
		}
	}
	if m.Files == nil {
		m.Files = []File{}
	}
}

// hasSizeCap reports whether the size cap stopped any entry.
func hasSizeCap(skipped []Skipped) bool {
	return slices.ContainsFunc(skipped, func(sk Skipped) bool { return sk.Reason == ReasonSizeCap || sk.Reason == ReasonFileCap })
}

// skippedCount is how many entries were skipped, including those a bounded
// list only counts in its last entry.
func skippedCount(skipped []Skipped) int {
	n := 0
	for _, sk := range skipped {
		var more int
		if sk.Path == "" {
			if _, err := fmt.Sscanf(sk.Reason, moreSkippedFormat, &more); err == nil && more > 0 {
				n += more
				continue
			}
		}
		n++
	}
	return n
}

// PutManifest finishes the manifest (see Finish), checks that every
// recorded object lies under the manifest's prefix, and stores it. Verify
// the returned object with m.Objects() before relying on the collection.
func (s *Store) PutManifest(ctx context.Context, m *Manifest) (Object, error) {
	if err := checkIDs(m.ClassID, m.StudentID); err != nil {
		return Object{}, err
	}
	if err := checkSegment("run", m.RunID); err != nil {
		return Object{}, err
	}
	prefix := m.Prefix()
	for _, o := range m.Objects() {
		if !strings.HasPrefix(o.Key, prefix) {
			return Object{}, fmt.Errorf("artifacts: manifest %s lists %s outside its prefix", prefix, o.Key)
		}
	}
	m.Finish()
	return s.PutJSON(ctx, ManifestKey(prefix), m)
}

// GetManifest reads one student's manifest of one run; ErrNotFound is
// wrapped when that collection did not finish.
func (s *Store) GetManifest(ctx context.Context, classID, runID, studentID string) (*Manifest, error) {
	var m Manifest
	if err := s.GetJSON(ctx, ManifestKey(api.ArtifactPrefix(classID, runID, studentID)), &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Item is one stored artifact of a class as graders browse it.
type Item struct {
	Student string `json:"student"`
	RunID   string `json:"runId"`
	// Path is relative to the student prefix: "files/workspace/notes.txt"
	// or "logs/container.log".
	Path   string `json:"path"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func manifestItems(runID, studentID string, m *Manifest) []Item {
	items := make([]Item, 0, len(m.Files)+1)
	for _, f := range m.Files {
		items = append(items, Item{Student: studentID, RunID: runID, Path: "files/" + f.Path, Key: f.Key, Size: f.Size, SHA256: f.SHA256})
	}
	if m.Logs != nil {
		items = append(items, Item{Student: studentID, RunID: runID, Path: LogsPath, Key: m.Logs.Key, Size: m.Logs.Size, SHA256: m.Logs.SHA256})
	}
	return items
}

// ListClass returns the artifacts of a class from the manifests under
// "classes/<classId>/", sorted by (runId, student, path): run ids are
// sortable timestamps, so the newest run comes last. Runs and students come
// from the key layout, which is what the manifests were found by.
func (s *Store) ListClass(ctx context.Context, classID string) ([]Item, error) {
	if err := checkIDs(classID); err != nil {
		return nil, err
	}
	runs, err := s.runIDs(ctx, classID)
	if err != nil {
		return nil, err
	}
	var entries []manifestRef
	for _, run := range runs {
		students, err := s.runStudents(ctx, classID, run)
		if err != nil {
			return nil, err
		}
		for _, st := range students {
			entries = append(entries, manifestRef{run, st})
		}
	}
	items, err := s.manifestsItems(ctx, classID, entries)
	if err != nil {
		return nil, fmt.Errorf("artifacts: list class %s: %w", classID, err)
	}
	return items, nil
}

// ListRun is ListClass for one run: the artifacts of the students whose
// collection in that run finished, sorted by (student, path). A run with
// nothing stored under its prefix wraps ErrNotFound.
func (s *Store) ListRun(ctx context.Context, classID, runID string) ([]Item, error) {
	if err := checkIDs(classID); err != nil {
		return nil, err
	}
	if err := checkSegment("run", runID); err != nil {
		return nil, err
	}
	keys, dirs, err := s.listDir(ctx, runPrefix(classID, runID))
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 && len(dirs) == 0 {
		return nil, fmt.Errorf("artifacts: run %s of class %s: %w", runID, classID, ErrNotFound)
	}
	entries := make([]manifestRef, 0, len(dirs))
	for _, d := range dirs {
		entries = append(entries, manifestRef{runID, lastSegment(d)})
	}
	items, err := s.manifestsItems(ctx, classID, entries)
	if err != nil {
		return nil, fmt.Errorf("artifacts: list run %s of class %s: %w", runID, classID, err)
	}
	return items, nil
}

type manifestRef struct{ run, student string }

// manifestsItems reads the manifests of entries, in parallel, and returns
// their items sorted by (runId, student, path). A student without a manifest
// has no items: the collection is in progress or failed.
func (s *Store) manifestsItems(ctx context.Context, classID string, entries []manifestRef) ([]Item, error) {
	results := make([][]Item, len(entries))
	err := parallel(ctx, len(entries), func(i int) error {
		e := entries[i]
		m, err := s.GetManifest(ctx, classID, e.run, e.student)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		results[i] = manifestItems(e.run, e.student, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var items []Item
	for _, r := range results {
		items = append(items, r...)
	}
	slices.SortFunc(items, func(a, b Item) int {
		if c := strings.Compare(a.RunID, b.RunID); c != 0 {
			return c
		}
		if c := strings.Compare(a.Student, b.Student); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return items, nil
}

// parallel calls fn(0) … fn(n-1), at most manifestParallel at once, and
// joins their errors.
func parallel(ctx context.Context, n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, manifestParallel)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = fn(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// LatestFile finds relPath ("files/workspace/notes.txt" or
// "logs/container.log") of a student in the latest run that has a manifest
// for that student. If that run does not have the file, the result is
// ErrNotFound: an older copy would misrepresent what the student handed in.
func (s *Store) LatestFile(ctx context.Context, classID, studentID, relPath string) (Item, error) {
	if err := checkIDs(classID, studentID); err != nil {
		return Item{}, err
	}
	runs, err := s.runIDs(ctx, classID)
	if err != nil {
		return Item{}, err
	}
	return s.LatestFileIn(ctx, classID, studentID, relPath, runs)
}

// LatestFileIn is LatestFile among the given runs of the class only, such
// as those a caller may read: the latest of them (run ids sort by time)
// with a manifest for the student decides.
func (s *Store) LatestFileIn(ctx context.Context, classID, studentID, relPath string, runs []string) (Item, error) {
	if err := checkIDs(classID, studentID); err != nil {
		return Item{}, err
	}
	run, m, err := s.latestManifestIn(ctx, classID, studentID, runs)
	if err != nil {
		return Item{}, fmt.Errorf("artifacts: %s: %w", relPath, err)
	}
	return manifestFile(classID, run, studentID, relPath, m)
}

// LatestManifest is the student's manifest in the latest run of the class
// that collected the student, whatever its kind, among the runs whose ids
// sort at or after since ("" for every run; a time as run ids begin,
// "20261201T090000Z", for the runs begun since), and that run's id;
// ErrNotFound is wrapped when no such run did. A run in which the
// student's collection failed (an autosave while their node was down) has
// no manifest of theirs, so an earlier run's is found.
func (s *Store) LatestManifest(ctx context.Context, classID, studentID, since string) (string, *Manifest, error) {
	if err := checkIDs(classID, studentID); err != nil {
		return "", nil, err
	}
	runs, err := s.runIDs(ctx, classID)
	if err != nil {
		return "", nil, err
	}
	runs = slices.DeleteFunc(runs, func(r string) bool { return r < since })
	return s.latestManifestIn(ctx, classID, studentID, runs)
}

// latestManifestIn is LatestManifest among the given runs only.
func (s *Store) latestManifestIn(ctx context.Context, classID, studentID string, runs []string) (string, *Manifest, error) {
	runs = slices.Clone(runs)
	slices.Sort(runs)
	for _, run := range slices.Backward(runs) {
		if err := checkSegment("run", run); err != nil {
			return "", nil, err
		}
		m, err := s.GetManifest(ctx, classID, run, studentID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return run, m, nil
	}
	return "", nil, fmt.Errorf("artifacts: %s/%s: no collected run: %w", classID, studentID, ErrNotFound)
}

// RunFile finds relPath of a student in the manifest of one run; ErrNotFound
// is wrapped when the student has no manifest in that run or the manifest
// does not list the file.
func (s *Store) RunFile(ctx context.Context, classID, runID, studentID, relPath string) (Item, error) {
	if err := checkIDs(classID, studentID); err != nil {
		return Item{}, err
	}
	if err := checkSegment("run", runID); err != nil {
		return Item{}, err
	}
	m, err := s.GetManifest(ctx, classID, runID, studentID)
	if err != nil {
		return Item{}, err
	}
	return manifestFile(classID, runID, studentID, relPath, m)
}

func manifestFile(classID, runID, studentID, relPath string, m *Manifest) (Item, error) {
	for _, it := range manifestItems(runID, studentID, m) {
		if it.Path == relPath {
			return it, nil
		}
	}
	return Item{}, fmt.Errorf("artifacts: %s of %s/%s in run %s: %w", relPath, classID, studentID, runID, ErrNotFound)
}

// runPrefix is where one run of a class is stored.
func runPrefix(classID, runID string) string { return "classes/" + classID + "/" + runID + "/" }

// runStudents returns the student prefixes under a run, as stored.
func (s *Store) runStudents(ctx context.Context, classID, runID string) ([]string, error) {
	_, dirs, err := s.listDir(ctx, runPrefix(classID, runID))
	if err != nil {
		return nil, err
	}
	students := make([]string, 0, len(dirs))
	for _, d := range dirs {
		students = append(students, lastSegment(d))
	}
	return students, nil
}

// runIDs returns the runs of a class in time order.
func (s *Store) runIDs(ctx context.Context, classID string) ([]string, error) {
	_, dirs, err := s.listDir(ctx, "classes/"+classID+"/")
	if err != nil {
		return nil, err
	}
	runs := make([]string, 0, len(dirs))
	for _, d := range dirs {
		runs = append(runs, lastSegment(d))
	}
	slices.Sort(runs)
	return runs, nil
}

func lastSegment(dir string) string {
	dir = strings.TrimSuffix(dir, "/")
	return dir[strings.LastIndexByte(dir, '/')+1:]
}

// checkIDs validates ids that become key segments, with the API's rules.
func checkIDs(classID string, studentIDs ...string) error {
	if err := api.ValidateID("class", classID); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	for _, id := range studentIDs {
		if err := api.ValidateID("student", id); err != nil {
			return fmt.Errorf("artifacts: %w", err)
		}
	}
	return nil
}

// checkSegment refuses ids that would change the key layout.
func checkSegment(kind, id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\") {
		return fmt.Errorf("artifacts: invalid %s id %q", kind, id)
	}
	return nil
}
