package grading

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

// A student's submission is read from the object store before their
// grader takes a place, not while a place is held: with one place, the
// next student's manifest is read while the first student's grader runs.
// (Before, the place was taken first, and the object store waited on in
// it, a grader's place idle meanwhile.)
func TestTheNextSubmissionIsReadWhileAGraderRuns(t *testing.T) {
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: x, port: 8080, memoryMiB: 64, cpus: 0.5, pids: 64, grader: {image: g, command: [grade]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := &gradeStore{grading: api.Grading{ClassID: "c", RunID: "r", Template: "sandbox", Attempt: 1, Students: []string{"amy", "ben"}}}
	objs := &readyObjects{objects: map[string][]byte{}, read: map[string]chan struct{}{"amy": make(chan struct{}), "ben": make(chan struct{})}}
	d := &readyDocker{waits: map[string]<-chan struct{}{
		// amy's grader runs until ben's manifest was read.
		api.GraderName("c", "r", "amy", 1): objs.read["ben"],
	}}
	g := New(st, d, objs, pol, freeSlots{}, Options{Parallel: 1}, zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		open, err := g.Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the grading never ended: amy's grader waited for ben's submission to be read, which waited for her place (results %v)", st.results())
		case <-time.After(10 * time.Millisecond):
		}
	}
	g.Wait()
	if r := st.results(); r["amy"] != api.GradeGraded || r["ben"] != api.GradeGraded {
		t.Errorf("results %v, want both graded", r)
	}
}

type gradeStore struct {
	Store
	mu      sync.Mutex
	grading api.Grading
	closed  bool
}

func (s *gradeStore) OpenGradings(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil
	}
	return []string{api.GradingID(s.grading.ClassID, s.grading.RunID)}, nil
}

func (s *gradeStore) GradingByID(_ context.Context, id string) (*api.Grading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gr := s.grading
	gr.ID = id
	return &gr, nil
}

func (s *gradeStore) RecordGrade(_ context.Context, _, student string, r api.GradingStudent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := map[string]api.GradingStudent{}
	for k, v := range s.grading.Results {
		res[k] = v
	}
	res[student] = r
	s.grading.Results = res
	return nil
}

func (s *gradeStore) CloseGrading(context.Context, string) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

func (s *gradeStore) results() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.grading.Results {
		out[k] = v.State
	}
	return out
}

// readyObjects holds one answer file per student; read[student] closes
// when that student's manifest was read. A manifest of a student in big
// says it holds more than a submission readied in memory may.
type readyObjects struct {
	mu      sync.Mutex
	objects map[string][]byte
	read    map[string]chan struct{}
	big     map[string]bool
}

func (o *readyObjects) GetManifest(_ context.Context, classID, runID, student string) (*artifacts.Manifest, error) {
	body := []byte(student + "'s answer\n")
	sum := sha256.Sum256(body)
	key := artifacts.FilesKey(api.ArtifactPrefix(classID, runID, student), "workspace/answer.txt")
	o.mu.Lock()
	o.objects[key] = body
	o.mu.Unlock()
	if ch := o.read[student]; ch != nil {
		defer close(ch)
	}
	total := int64(len(body))
	if o.big[student] {
		total = readyMaxBytes + 1
	}
	return &artifacts.Manifest{ClassID: classID, RunID: runID, StudentID: student, TotalBytes: total,
		Files: []artifacts.File{{Path: "workspace/answer.txt", Key: key, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}}}, nil
}

func (o *readyObjects) Open(_ context.Context, key string) (io.ReadCloser, int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.objects[key]
	if !ok {
		return nil, 0, artifacts.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (o *readyObjects) PutJSON(context.Context, string, any) (artifacts.Object, error) {
	return artifacts.Object{}, nil
}

func (o *readyObjects) GetJSON(context.Context, string, any) error { return artifacts.ErrNotFound }

// readyDocker runs every grader to a full score; a grader's Wait holds
// until its channel in waits closes. copied holds what each grader was
// given, file by file.
type readyDocker struct {
	Docker
	waits  map[string]<-chan struct{}
	mu     sync.Mutex
	copied map[string]map[string]string
}

func (d *readyDocker) ListGraders(context.Context) ([]container.Summary, error) { return nil, nil }
func (d *readyDocker) CreateFresh(_ context.Context, spec dockerx.ContainerSpec) (string, error) {
	return spec.Name, nil
}
func (d *readyDocker) CopyTo(_ context.Context, id, _ string, r io.Reader) error {
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			files[hdr.Name] = string(b)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.copied == nil {
		d.copied = map[string]map[string]string{}
	}
	d.copied[id] = files
	return nil
}
func (d *readyDocker) StartContainer(context.Context, string) error { return nil }
func (d *readyDocker) Wait(ctx context.Context, id string) (int64, error) {
	if ch := d.waits[id]; ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return 0, nil
}
func (d *readyDocker) Archive(context.Context, string, string) (io.ReadCloser, error) {
	body := []byte(`{"score": 1, "maxScore": 1, "feedback": "", "tests": []}`)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "grade.json", Size: int64(len(body)), Mode: 0o644})
	tw.Write(body)
	tw.Close()
	return io.NopCloser(&b), nil
}
func (d *readyDocker) RemoveContainer(context.Context, string) error { return nil }

type freeSlots struct{}

func (freeSlots) Acquire(context.Context) (func(), error) { return func() {}, nil }

// A submission too big to ready in memory streams from the object store
// into its grader, checked the same way.
func TestABigSubmissionStreamsIntoItsGrader(t *testing.T) {
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: x, port: 8080, memoryMiB: 64, cpus: 0.5, pids: 64, grader: {image: g, command: [grade]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := &gradeStore{grading: api.Grading{ClassID: "c", RunID: "r", Template: "sandbox", Attempt: 1, Students: []string{"amy", "ben"}}}
	objs := &readyObjects{objects: map[string][]byte{}, big: map[string]bool{"ben": true}}
	d := &readyDocker{}
	g := New(st, d, objs, pol, freeSlots{}, Options{Parallel: 1}, zap.NewNop())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for open := true; open; {
		if open, err = g.Pass(ctx); err != nil {
			t.Fatal(err)
		}
		g.Wait()
	}
	if r := st.results(); r["amy"] != api.GradeGraded || r["ben"] != api.GradeGraded {
		t.Errorf("results %v, want both graded", r)
	}
	for _, s := range []string{"amy", "ben"} {
		got := d.copied[api.GraderName("c", "r", s, 1)]["submission/workspace/answer.txt"]
		if got != s+"'s answer\n" {
			t.Errorf("%s's grader was given %q", s, got)
		}
	}
}
