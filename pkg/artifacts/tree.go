package artifacts

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"time"
)

// Opener reads a stored object and its size.
type Opener interface {
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
}

// BadFile is a collected file that cannot be written back: its manifest
// entry is not a clean path, or its object is missing or does not match the
// manifest. Trying again does not mend it.
type BadFile struct{ Reason string }

func (b *BadFile) Error() string { return b.Reason }

// Rel is the file's exact path relative to "/", as it was collected.
func (f File) Rel() (string, error) {
	if f.RawPath == "" {
		return f.Path, nil
	}
	raw, err := base64.StdEncoding.DecodeString(f.RawPath)
	if err != nil {
		return "", &BadFile{fmt.Sprintf("the manifest's raw path of %q is not base64", f.Path)}
	}
	return string(raw), nil
}

// Layout says where and as whom collected files go in a tar stream.
type Layout struct {
	// Name maps a file's exact path (relative to "/", as collected) to its
	// name in the tar; "" leaves the file out.
	Name func(rel string) string
	// Root is a directory the tar's reader already has: it and what is
	// above it get no entry.
	Root     string
	UID, GID int
	// FileMode and DirMode are the files' and the directories' modes.
	FileMode, DirMode int64
}

// WriteFiles writes the collected files into tw as the layout places them,
// with the directories above each, each file checked against its manifest's
// size and hash as it streams from the object store: what goes back into a
// container (a grader's submission, a sandbox made again for a late
// hand-in) is exactly what was collected, or a *BadFile error.
func WriteFiles(ctx context.Context, tw *tar.Writer, objs Opener, files []File, l Layout) error {
	type entry struct {
		name string
		f    File
	}
	var entries []entry
	dirs := map[string]bool{}
	for _, f := range files {
		rel, err := f.Rel()
		if err != nil {
			return err
		}
		if clean := path.Clean("/" + rel); clean == "/" || clean != "/"+rel {
			return &BadFile{fmt.Sprintf("the manifest lists a path that is not clean: %q", f.Path)}
		}
		name := l.Name(rel)
		if name == "" {
			continue
		}
		entries = append(entries, entry{name, f})
		for d := path.Dir(name); d != "." && d != "/" && d != l.Root && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	now := time.Now()
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names) // a parent sorts before its children
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: l.DirMode, Uid: l.UID, Gid: l.GID, ModTime: now}); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: e.f.Size, Mode: l.FileMode, Uid: l.UID, Gid: l.GID, ModTime: now}); err != nil {
			return err
		}
		rc, size, err := objs.Open(ctx, e.f.Key)
		if errors.Is(err, ErrNotFound) {
			return &BadFile{fmt.Sprintf("collected file %q is missing from the object store", e.f.Path)}
		}
		if err != nil {
			return err
		}
		if size != e.f.Size {
			rc.Close()
			return &BadFile{fmt.Sprintf("collected file %q is %d bytes, its manifest says %d", e.f.Path, size, e.f.Size)}
		}
		h := sha256.New()
		_, err = io.Copy(tw, io.TeeReader(io.LimitReader(rc, size), h))
		rc.Close()
		if err != nil {
			return err
		}
		if hex.EncodeToString(h.Sum(nil)) != e.f.SHA256 {
			return &BadFile{fmt.Sprintf("collected file %q does not match its manifest's hash", e.f.Path)}
		}
	}
	return nil
}

// Stream runs write and read at once, joined by a pipe: what write writes,
// read reads, nothing held in memory. Each returns its own error; a write
// that fails ends the read with its error, and a read that ends early
// ends the write.
func Stream(write func(io.Writer) error, read func(io.Reader) error) (writeErr, readErr error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	readErr = read(pr)
	pr.CloseWithError(errors.New("the reader stopped"))
	return <-done, readErr
}
