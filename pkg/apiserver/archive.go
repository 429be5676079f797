package apiserver

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// archiveFormat is one way a run can be downloaded whole.
type archiveFormat struct {
	// name is how ?format= names it, and the metric's label.
	name        string
	contentType string
	ext         string
	// mediaTypes are the types an Accept header may ask for it by.
	mediaTypes []string
}

// archiveFormats in the server's order of preference: a zip opens with a
// double click on every teacher's machine.
var archiveFormats = []*archiveFormat{
	{name: "zip", contentType: "application/zip", ext: ".zip", mediaTypes: []string{"application/zip"}},
	{name: "tar.gz", contentType: "application/gzip", ext: ".tar.gz",
		mediaTypes: []string{"application/gzip", "application/x-gzip", "application/x-tar+gzip"}},
}

// Outcomes of an archive download, as counted.
const (
	archiveComplete = "complete"
	// archiveFailed: the object store failed or an object did not match its
	// manifest while streaming; the connection was cut.
	archiveFailed = "failed"
	// archiveCanceled: the client went away.
	archiveCanceled = "canceled"
)

// archiveIdleTimeout ends a download that moved nothing for this long, the
// same bound the artifact store puts on each of its transfers. It replaces
// the server's WriteTimeout for archives, which may take longer than any
// other call as long as they move.
const archiveIdleTimeout = artifacts.DefaultIdleTimeout

// maxArchiveJSON bounds the index and each manifest, which are read whole
// (one at a time) to learn what to stream next.
const maxArchiveJSON = 64 << 20

// newArchiveCounter counts run archive downloads by format and outcome.
func newArchiveCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeroom_run_archives_total",
		Help: "Downloads of a whole run (GET …/runs/{runId}/archive) by format and outcome: complete, failed (cut off: the object store failed or an object did not match its manifest), canceled (the client went away).",
	}, []string{"format", "outcome"})
	for _, f := range archiveFormats {
		for _, o := range []string{archiveComplete, archiveFailed, archiveCanceled} {
			c.WithLabelValues(f.name, o)
		}
	}
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// getRunArchive streams one archive of a completed run: the run's index.json
// at the top, then for each collected student <studentId>/manifest.json,
// <studentId>/files/<path> for every file of the manifest and
// <studentId>/logs/container.log. Nothing of the run is held whole: the
// index and one manifest at a time are read, and each object is streamed
// from the store into the archive, its checksum checked against the
// manifest's on the way. Whatever goes wrong once the answer has begun
// cuts the connection, so that a client never takes a truncated archive
// for a whole one.
func (s *Server) getRunArchive(c echo.Context) error {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return err
	}
	run := c.Param("run")
	if err := validRunID(run); err != nil {
		return err
	}
	notFound := apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q has no run %q", id, run))
	if err := s.authorizeRun(c, id, run, seen, notFound); err != nil {
		return err
	}
	format, err := negotiateArchive(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	index, idx, err := readRunJSON(ctx, s.artifacts, artifacts.RunIndexKey(id, run), new(artifacts.RunIndex))
	if errors.Is(err, artifacts.ErrNotFound) {
		return s.runWithoutIndex(ctx, id, run)
	}
	if err != nil {
		return fmt.Errorf("read run index: %w", err)
	}
	if idx.ClassID != id || idx.RunID != run {
		return fmt.Errorf("run index %s names class %q run %q", artifacts.RunIndexKey(id, run), idx.ClassID, idx.RunID)
	}

	resp := c.Response()
	h := resp.Header()
	h.Set(echo.HeaderContentType, format.contentType)
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", id+"-"+run+format.ext))
	h.Set(echo.HeaderVary, "Accept")
	h.Set("X-Homeroom-Run-Id", run)
	rc := http.NewResponseController(resp)
	out := &deadlineWriter{w: resp, rc: rc, idle: archiveIdleTimeout}
	out.push()
	resp.WriteHeader(http.StatusOK)
	// The answer has begun: a client that sees it cut off then knows that
	// the archive broke, and does not send the request again as browsers
	// do when a connection closes before any answer.
	_ = rc.Flush()
	aw := newArchiveWriter(format, out)
	err = s.writeRunArchive(ctx, aw, id, run, index, idx)
	if err == nil {
		err = aw.Close()
	}
	if err != nil {
		fields := []zap.Field{zap.String("classId", id), zap.String("runId", run), zap.String("format", format.name),
			zap.String("requestId", h.Get(echo.HeaderXRequestID)), zap.Error(err)}
		if ctx.Err() != nil {
			s.archives.WithLabelValues(format.name, archiveCanceled).Inc()
			s.log.Info("run archive: the client went away", fields...)
		} else {
			s.archives.WithLabelValues(format.name, archiveFailed).Inc()
			s.log.Error("run archive cut off", fields...)
		}
		// The status went out before the archive: cutting the connection
		// is the one way left to say that the archive is not whole.
		panic(http.ErrAbortHandler)
	}
	s.archives.WithLabelValues(format.name, archiveComplete).Inc()
	return nil
}

// runWithoutIndex answers for a run whose index is not stored: 409 if
// anything of the run is stored (its Down has not completed), else 404.
func (s *Server) runWithoutIndex(ctx context.Context, id, run string) error {
	runs, err := s.artifacts.ListRuns(ctx, id)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	for _, r := range runs {
		if r.RunID == run {
			return apiError(http.StatusConflict, "run_incomplete",
				fmt.Sprintf("run %q of class %q has not completed: its Down is still collecting, or never finished", run, id))
		}
	}
	return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q has no run %q", id, run))
}

// negotiateArchive picks the archive format: ?format= (zip or tar.gz) if
// given, for a browser's plain link; else by Accept, zip when it names no
// preference. 406 when Accept names neither format.
func negotiateArchive(c echo.Context) (*archiveFormat, error) {
	if vals, ok := c.QueryParams()["format"]; ok {
		if len(vals) == 1 {
			for _, f := range archiveFormats {
				if vals[0] == f.name {
					return f, nil
				}
			}
		}
		return nil, apiError(http.StatusBadRequest, "invalid_query", "give format once: zip or tar.gz")
	}
	accept := strings.Join(c.Request().Header.Values(echo.HeaderAccept), ",")
	if strings.TrimSpace(accept) == "" {
		return archiveFormats[0], nil
	}
	if f := chooseArchive(accept); f != nil {
		return f, nil
	}
	return nil, apiError(http.StatusNotAcceptable, "not_acceptable",
		fmt.Sprintf("a run's archive is application/zip or application/gzip (tar.gz); Accept %q allows neither", accept))
}

// chooseArchive is the format accept prefers: each format takes the
// quality of the most specific range that names it (its own type, then
// application/*, then */*), the highest quality wins, then the range named
// first, then the server's order. A quality of 0 refuses a format.
func chooseArchive(accept string) *archiveFormat {
	var best *archiveFormat
	bestQ, bestPos := 0.0, 0
	for _, f := range archiveFormats {
		spec, q, pos := -1, 0.0, 0
		for i, r := range strings.Split(accept, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(r))
			if err != nil {
				continue
			}
			s := -1
			switch {
			case mt == "*/*":
				s = 0
			case mt == "application/*":
				s = 1
			case slices.Contains(f.mediaTypes, mt):
				s = 2
			}
			if s <= spec {
				continue
			}
			rq := 1.0
			if v, ok := params["q"]; ok {
				if rq, err = strconv.ParseFloat(v, 64); err != nil || rq < 0 || rq > 1 {
					continue
				}
			}
			spec, q, pos = s, rq, i
		}
		if q > bestQ || q > 0 && q == bestQ && pos < bestPos {
			best, bestQ, bestPos = f, q, pos
		}
	}
	return best
}

// writeRunArchive writes the run's index and every collected student's
// manifest, files and log into aw, one student at a time in the index's
// order.
func (s *Server) writeRunArchive(ctx context.Context, aw archiveWriter, id, run string, index []byte, idx *artifacts.RunIndex) error {
	if err := putBytes(aw, artifacts.RunIndexName, index, idx.CompletedAt); err != nil {
		return err
	}
	for _, st := range idx.Students {
		if st.Outcome == artifacts.OutcomeMissing {
			continue // collected and incomplete students both have their work
		}
		if err := api.ValidateID("student", st.StudentID); err != nil {
			return fmt.Errorf("run index: %w", err)
		}
		prefix := api.ArtifactPrefix(id, run, st.StudentID)
		raw, m, err := readRunJSON(ctx, s.artifacts, artifacts.ManifestKey(prefix), new(artifacts.Manifest))
		if err != nil {
			return fmt.Errorf("manifest of %s: %w", st.StudentID, err)
		}
		if m.ClassID != id || m.RunID != run || m.StudentID != st.StudentID {
			return fmt.Errorf("manifest %s names %s/%s/%s", artifacts.ManifestKey(prefix), m.ClassID, m.RunID, m.StudentID)
		}
		when := m.CollectedAt
		if when.IsZero() {
			when = idx.CompletedAt
		}
		if err := putBytes(aw, st.StudentID+"/manifest.json", raw, when); err != nil {
			return err
		}
		for _, f := range m.Files {
			name := f.Path
			if f.RawPath != "" {
				// A name that is not UTF-8 goes into the archive as it was.
				raw, err := base64.StdEncoding.DecodeString(f.RawPath)
				if err != nil {
					return fmt.Errorf("manifest %s: rawPath of %q: %w", artifacts.ManifestKey(prefix), f.Path, err)
				}
				name = string(raw)
			}
			if !cleanRelative(name) || !strings.HasPrefix(f.Key, prefix) {
				return fmt.Errorf("manifest %s lists %q at %s", artifacts.ManifestKey(prefix), name, f.Key)
			}
			if err := s.putObject(ctx, aw, st.StudentID+"/files/"+name, f.Object(), when); err != nil {
				return err
			}
		}
		if m.Logs != nil {
			if !strings.HasPrefix(m.Logs.Key, prefix) {
				return fmt.Errorf("manifest %s lists its log at %s", artifacts.ManifestKey(prefix), m.Logs.Key)
			}
			if err := s.putObject(ctx, aw, st.StudentID+"/"+artifacts.LogsPath, m.Logs.Object(), when); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanRelative reports whether p can name an entry under a student's
// files/ without escaping it where the archive is unpacked.
func cleanRelative(p string) bool {
	return p != "" && !strings.HasPrefix(p, "/") && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// readRunJSON reads a JSON object of the run whole: its bytes as stored,
// which go into the archive as they are, and decoded into v.
func readRunJSON[T any](ctx context.Context, a Artifacts, key string, v *T) ([]byte, *T, error) {
	rc, _, err := a.Open(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxArchiveJSON+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(b) > maxArchiveJSON {
		return nil, nil, fmt.Errorf("%s is larger than %d bytes", key, maxArchiveJSON)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return b, v, nil
}

// putObject streams one stored object into the archive as name, and fails
// if it is not what the manifest recorded: another size, or another
// SHA-256 once its last byte went by.
func (s *Server) putObject(ctx context.Context, aw archiveWriter, name string, obj artifacts.Object, modified time.Time) error {
	rc, size, err := s.artifacts.Open(ctx, obj.Key)
	if err != nil {
		return fmt.Errorf("open %s: %w", obj.Key, err)
	}
	defer rc.Close()
	if size != obj.Size {
		return fmt.Errorf("%s holds %d bytes, its manifest %d", obj.Key, size, obj.Size)
	}
	w, err := aw.create(name, obj.Size, modified)
	if err != nil {
		return err
	}
	sum := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(w, sum), rc, obj.Size); err != nil {
		return fmt.Errorf("copy %s: %w", obj.Key, err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != obj.SHA256 {
		return fmt.Errorf("%s has SHA-256 %s, its manifest %s", obj.Key, got, obj.SHA256)
	}
	return nil
}

func putBytes(aw archiveWriter, name string, b []byte, modified time.Time) error {
	w, err := aw.create(name, int64(len(b)), modified)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// archiveWriter is a zip or a tar.gz being written.
type archiveWriter interface {
	// create starts the entry name of size bytes, to be written in full to
	// the writer returned before the next entry.
	create(name string, size int64, modified time.Time) (io.Writer, error)
	// Close ends the archive (a zip's central directory, tar's and gzip's
	// trailers): an archive cut off before it is not whole.
	Close() error
}

func newArchiveWriter(f *archiveFormat, w io.Writer) archiveWriter {
	if f.name == "zip" {
		return zipArchive{zip.NewWriter(w)}
	}
	gz := gzip.NewWriter(w)
	return &tarGzArchive{gz: gz, tw: tar.NewWriter(gz)}
}

type zipArchive struct{ zw *zip.Writer }

func (z zipArchive) create(name string, size int64, modified time.Time) (io.Writer, error) {
	fh := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: modified.UTC(), UncompressedSize64: uint64(size)}
	fh.SetMode(0o644)
	return z.zw.CreateHeader(fh)
}

func (z zipArchive) Close() error { return z.zw.Close() }

type tarGzArchive struct {
	gz *gzip.Writer
	tw *tar.Writer
}

func (t *tarGzArchive) create(name string, size int64, modified time.Time) (io.Writer, error) {
	err := t.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: modified.UTC()})
	return t.tw, err
}

func (t *tarGzArchive) Close() error {
	if err := t.tw.Close(); err != nil {
		return err
	}
	return t.gz.Close()
}

// deadlineWriter moves the connection's write deadline forward while the
// archive moves, so that a download ends when it stalls for idle, however
// long it takes in all.
type deadlineWriter struct {
	w    io.Writer
	rc   *http.ResponseController
	idle time.Duration
	last time.Time
	off  bool
}

// push sets the deadline idle from now; at most once a second, as writes
// come in small pieces.
func (d *deadlineWriter) push() {
	if d.off {
		return
	}
	now := time.Now()
	if now.Sub(d.last) < time.Second {
		return
	}
	if err := d.rc.SetWriteDeadline(now.Add(d.idle)); err != nil {
		// Not a connection of net/http's: it has no deadline to move.
		d.off = true
		return
	}
	d.last = now
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.push()
	return d.w.Write(p)
}
