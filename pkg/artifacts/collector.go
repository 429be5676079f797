package artifacts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

// Source is what collection needs of the container engine: the container as
// it is, its log, and a tar of a path inside it (running or stopped).
// dockerx.Client is one.
type Source interface {
	InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error)
	Logs(ctx context.Context, id string) (io.ReadCloser, error)
	Archive(ctx context.Context, id, path string) (io.ReadCloser, error)
}

// Objects is what collection needs of the object store. *Store is one; the
// controller's tests use a map.
type Objects interface {
	PutStream(ctx context.Context, key string, r io.Reader, size int64, contentType string) (Object, error)
	Verify(ctx context.Context, objs []Object) error
}

// Collector is the one way a student's work is collected: by the controller
// at Down, for an orphan, and for an autosave.
type Collector struct {
	Source  Source
	Objects Objects
	Now     func() time.Time
}

// Request names one student's collection.
type Request struct {
	ClassID, Subject, RunID, StudentID string
	// Container is the container's name or id.
	Container string
	// Rules are the class template's as it is now; they are merged with
	// those the container recorded when it was made (see Rules.Merge), so
	// that a template changed while Up never collects less.
	Rules Rules
	// Prefix is where the collection goes; empty means
	// api.ArtifactPrefix(ClassID, RunID, StudentID).
	Prefix string
}

// Result is a verified collection.
type Result struct {
	Manifest       *Manifest
	ManifestObject Object
	// Uploaded is the bytes uploaded: the files and the log.
	Uploaded int64
}

// Ref is the student's checkpoint of the collection, for the class status.
func (r *Result) Ref(prefix string) *api.ArtifactsRef {
	m := r.Manifest
	return &api.ArtifactsRef{
		RunID: m.RunID, Prefix: prefix, Manifest: r.ManifestObject.Key,
		Files: len(m.Files), Bytes: m.TotalBytes, CollectedAt: m.CollectedAt,
		ManifestSHA256: r.ManifestObject.SHA256, State: api.CollectVerified,
		Truncated: m.Truncated, Incomplete: m.Incomplete,
	}
}

// ReasonMissingPath is why a collect path that is not in the container was
// not collected; nothing was lost.
const ReasonMissingPath = "does not exist in the container"

// Collect uploads a student's log and collect paths, writes the manifest,
// and verifies every object. Only a nil error means the work is safe to
// remove. Keys depend only on the request and the container's files, so a
// retried collection overwrites the same objects.
func (c *Collector) Collect(ctx context.Context, req Request) (*Result, error) {
	info, err := c.Source.InspectContainer(ctx, req.Container)
	if err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	prefix := req.Prefix
	if prefix == "" {
		prefix = api.ArtifactPrefix(req.ClassID, req.RunID, req.StudentID)
	}
	var labels map[string]string
	if info.Config != nil {
		labels = info.Config.Labels
	}
	rules := req.Rules.Merge(RulesFromLabels(labels))
	m := &Manifest{
		ClassID:   req.ClassID,
		Subject:   req.Subject,
		StudentID: req.StudentID,
		RunID:     req.RunID,
		Template:  labels[api.LabelTemplate],
		Image:     info.Image,
		Container: containerInfo(info),
	}
	logs, err := c.uploadLogs(ctx, info.ID, prefix)
	if err != nil {
		return nil, err
	}
	m.Logs = &logs

	budget := &budget{bytes: rules.MaxBytes, files: rules.MaxFiles}
	for _, p := range rules.Paths {
		if budget.spent() {
			m.Skipped = append(m.Skipped, Skipped{Path: strings.TrimPrefix(p, "/"), Reason: budget.reason()})
			continue
		}
		rc, err := c.Source.Archive(ctx, info.ID, p)
		if dockerx.IsNotFound(err) {
			m.Skipped = append(m.Skipped, Skipped{Path: strings.TrimPrefix(p, "/"), Reason: ReasonMissingPath})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("archive %s: %w", p, err)
		}
		failpoint.Hit("archive-open-before-upload")
		files, skipped, err := uploadTree(ctx, c.Objects, prefix, p, rc, budget, rules.ExcludeDirs)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("upload %s: %w", p, err)
		}
		m.Files = append(m.Files, files...)
		m.Skipped = append(m.Skipped, skipped...)
	}
	m.CollectedAt = c.Now()
	m.Finish()
	mobj, err := c.putManifest(ctx, ManifestKey(prefix), m)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	objs := append(m.Objects(), mobj)
	if err := c.Objects.Verify(ctx, objs); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	return &Result{Manifest: m, ManifestObject: mobj, Uploaded: m.TotalBytes + logs.Size}, nil
}

// putManifest streams the manifest to the store one file at a time, so that
// a manifest of many files is never held whole a second time as JSON.
func (c *Collector) putManifest(ctx context.Context, key string, m *Manifest) (Object, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(EncodeManifest(pw, m)) }()
	obj, err := c.Objects.PutStream(ctx, key, pr, -1, "application/json")
	pr.CloseWithError(errors.New("upload ended"))
	return obj, err
}

// EncodeManifest writes m as JSON, its files one at a time. It is what
// encoding/json writes for m, without the indentation. The skipped entries
// are bounded (see uploadTree) and go with the rest.
func EncodeManifest(w io.Writer, m *Manifest) error {
	head := *m
	head.Files = nil
	b, err := json.Marshal(head)
	if err != nil {
		return err
	}
	before, after, ok := bytes.Cut(b, []byte(`"files":null`))
	if !ok {
		return errors.New("artifacts: manifest without its files")
	}
	if _, err := w.Write(append(before, `"files":`...)); err != nil {
		return err
	}
	if err := writeList(w, m.Files); err != nil {
		return err
	}
	_, err = w.Write(append(after, '\n'))
	return err
}

func writeList[T any](w io.Writer, items []T) error {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, it := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		b, err := json.Marshal(it)
		if err != nil {
			return err
		}
		buf.Write(b)
		if buf.Len() > 64<<10 {
			if _, err := w.Write(buf.Bytes()); err != nil {
				return err
			}
			buf.Reset()
		}
	}
	buf.WriteByte(']')
	_, err := w.Write(buf.Bytes())
	return err
}

func (c *Collector) uploadLogs(ctx context.Context, id, prefix string) (File, error) {
	rc, err := c.Source.Logs(ctx, id)
	if err != nil {
		return File{}, fmt.Errorf("logs: %w", err)
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Sandboxes run without a TTY, so the daemon multiplexes stdout and
		// stderr; both go, interleaved, into one log object.
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	f, err := putLogs(ctx, c.Objects, prefix, pr, -1)
	pr.CloseWithError(errors.New("upload ended"))
	rc.Close()
	<-done
	if err != nil {
		return File{}, fmt.Errorf("upload logs: %w", err)
	}
	return f, nil
}

func containerInfo(info container.InspectResponse) ContainerInfo {
	ci := ContainerInfo{ID: info.ID, Name: strings.TrimPrefix(info.Name, "/")}
	if s := info.State; s != nil {
		ci.State = s.Status
		code := s.ExitCode
		ci.ExitCode = &code
		if t, err := time.Parse(time.RFC3339Nano, s.StartedAt); err == nil && t.Year() > 1 {
			ci.StartedAt = &t
		}
		if t, err := time.Parse(time.RFC3339Nano, s.FinishedAt); err == nil && t.Year() > 1 {
			ci.FinishedAt = &t
		}
	}
	return ci
}

// Rules are what is collected of one student: the collect paths, the
// directories left out of them, and the caps. A container records the rules
// it was made with in a label.
type Rules struct {
	Paths    []string `json:"paths"`
	MaxBytes int64    `json:"maxBytes"`
	MaxFiles int      `json:"maxFiles"`
	// ExcludeDirs are names of directories, at any depth below a collect
	// path, that are not collected (caches such as __pycache__). Omitted
	// when empty, so that the label, and with it the config hash, of a
	// container whose template excludes nothing stays what it was.
	ExcludeDirs []string `json:"excludeDirs,omitempty"`
}

// RulesFor is a template's rules; a nil template (one removed from the
// policy since the class came up) gets the defaults.
func RulesFor(t *policy.Template) Rules {
	r := Rules{Paths: []string{"/workspace"}, MaxBytes: t.CollectMaxBytes(), MaxFiles: t.CollectMaxFileCount()}
	if t != nil && len(t.CollectPaths) > 0 {
		r.Paths = slices.Clone(t.CollectPaths)
	}
	if t != nil && len(t.CollectExcludeDirs) > 0 {
		r.ExcludeDirs = slices.Clone(t.CollectExcludeDirs)
	}
	return r
}

// Label is the rules as the container label api.LabelCollect holds them.
func (r Rules) Label() string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err) // plain struct
	}
	return string(b)
}

// RulesFromLabels reads the rules a container was made with; a container
// made before they were recorded has none (zero Rules).
func RulesFromLabels(labels map[string]string) Rules {
	var r Rules
	if v := labels[api.LabelCollect]; v == "" || json.Unmarshal([]byte(v), &r) != nil {
		return Rules{}
	}
	// Only Homeroom labels its containers, but a path is still a path into
	// a student's container: keep the clean absolute ones.
	r.Paths = slices.DeleteFunc(r.Paths, func(p string) bool { return !path.IsAbs(p) || path.Clean(p) != p || p == "/" })
	r.ExcludeDirs = slices.DeleteFunc(r.ExcludeDirs, func(name string) bool { return policy.CheckDirName(name) != nil })
	if len(r.ExcludeDirs) == 0 {
		r.ExcludeDirs = nil
	}
	return r
}

// Merge is what collects the most of both: every path of either, the
// larger of each cap, and only the directories both exclude. A template
// changed while Up therefore never reduces what is collected of containers
// made before the change.
func (r Rules) Merge(o Rules) Rules {
	m := Rules{Paths: slices.Clone(r.Paths), MaxBytes: max(r.MaxBytes, o.MaxBytes), MaxFiles: max(r.MaxFiles, o.MaxFiles)}
	for _, d := range r.ExcludeDirs {
		if slices.Contains(o.ExcludeDirs, d) && !slices.Contains(m.ExcludeDirs, d) {
			m.ExcludeDirs = append(m.ExcludeDirs, d)
		}
	}
	for _, p := range o.Paths {
		if !slices.Contains(m.Paths, p) {
			m.Paths = append(m.Paths, p)
		}
	}
	if len(m.Paths) == 0 {
		m.Paths = []string{"/workspace"}
	}
	// A path inside another is collected with it; collecting it again
	// would list its files twice.
	m.Paths = slices.DeleteFunc(m.Paths, func(p string) bool {
		return slices.ContainsFunc(m.Paths, func(q string) bool { return strings.HasPrefix(p, q+"/") })
	})
	return m
}
