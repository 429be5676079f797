package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/homeroom/homeroom/internal/failpoint"
)

// File is one collected file.
type File struct {
	// Path is relative to "/" in the container, e.g. "workspace/notes.txt".
	Path string `json:"path"`
	// RawPath is the path's exact bytes in base64 when they are not UTF-8;
	// Path then shows them with U+FFFD for each byte that is not.
	RawPath string `json:"rawPath,omitempty"`
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// Object is the stored object this file was uploaded as.
func (f File) Object() Object { return Object{Key: f.Key, Size: f.Size, SHA256: f.SHA256} }

// Skipped is an archive entry that was not uploaded, and why.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Reasons an entry is skipped. They appear in manifests, so they are stable.
const (
	ReasonAbsolute    = "absolute path"
	ReasonParent      = "path contains .."
	ReasonOutside     = "outside collect path"
	ReasonInvalidName = "invalid name"
	ReasonSymlink     = "symlink"
	ReasonHardlink    = "hardlink"
	ReasonDevice      = "device"
	ReasonFIFO        = "fifo"
	ReasonUnsupported = "unsupported entry type"
	ReasonSizeCap     = "size cap"
	ReasonFileCap     = "file cap"
	// ReasonExcluded is a directory the template's rules leave out (a
	// cache such as __pycache__); it is listed once, what it holds not at all.
	ReasonExcluded = "excluded by the template"
)

// IsLoss tells the reasons that mean work was not collected although the
// template's rules would have kept it: a student's outcome is then
// incomplete. The caps, links and special files are the template's rules,
// and a collect path missing from the container held nothing.
func IsLoss(reason string) bool {
	switch reason {
	case ReasonSizeCap, ReasonFileCap, ReasonSymlink, ReasonHardlink, ReasonDevice, ReasonFIFO, ReasonMissingPath, ReasonExcluded:
		return false
	}
	// The entry counting unlisted skips is not a reason of its own.
	var n int
	if _, err := fmt.Sscanf(reason, moreSkippedFormat, &n); err == nil {
		return false
	}
	return true
}

// FilesKey is where a file collected at rel (relative to "/") is stored.
func FilesKey(prefix, rel string) string { return prefix + "files/" + rel }

// EncodedKey is where a file is stored whose path cannot be a key: a name
// that is not UTF-8, or a path longer than S3 allows. The manifest maps it
// back to the path. Nothing a student names is stored under "encoded/".
func EncodedKey(prefix, rel string) string {
	sum := sha256.Sum256([]byte(rel))
	return prefix + "encoded/" + hex.EncodeToString(sum[:])
}

// fileKey is where the file at rel goes, and the manifest's record of its
// path: rel itself when it is UTF-8, else rel with the bytes that are not
// replaced and the exact name in base64.
func fileKey(prefix, rel string) (key, shown, raw string) {
	if !utf8.ValidString(rel) {
		return EncodedKey(prefix, rel), strings.ToValidUTF8(rel, "\uFFFD"), base64.StdEncoding.EncodeToString([]byte(rel))
	}
	if key := FilesKey(prefix, rel); checkKey(key) == nil {
		return key, rel, ""
	}
	return EncodedKey(prefix, rel), rel, ""
}

// UploadTree uploads the regular files of a tar stream with at most maxBytes
// of them (0: no cap); see uploadTree.
func (s *Store) UploadTree(ctx context.Context, prefix, collectPath string, tarStream io.Reader, maxBytes int64) ([]File, []Skipped, error) {
	return uploadTree(ctx, s, prefix, collectPath, tarStream, &budget{bytes: maxBytes}, nil)
}

// budget is what a student's collection may still take, across its collect
// paths; zero caps are unlimited.
type budget struct {
	bytes, usedBytes int64
	files, usedFiles int
}

func (b *budget) spent() bool { return b.reason() != "" }

// reason is why nothing more fits, or "".
func (b *budget) reason() string {
	switch {
	case b.files > 0 && b.usedFiles >= b.files:
		return ReasonFileCap
	case b.bytes > 0 && b.usedBytes >= b.bytes:
		return ReasonSizeCap
	}
	return ""
}

// admit reserves a file of size bytes, or says which cap it passes.
func (b *budget) admit(size int64) string {
	switch {
	case b.files > 0 && b.usedFiles >= b.files:
		return ReasonFileCap
	case b.bytes > 0 && b.usedBytes+size > b.bytes:
		return ReasonSizeCap
	}
	b.usedFiles++
	b.usedBytes += size
	return ""
}

// smallFileMax is the size up to which a file is read whole and uploaded
// beside the next ones: a workspace of many small files is bound by round
// trips, not bytes. Larger files stream one at a time.
const smallFileMax = 256 << 10

// uploadParallel bounds the small files in flight at once.
const uploadParallel = 8

// uploadTree uploads the regular files of a tar stream as returned by
// Docker's CopyFromContainer for collectPath, whose entry names are relative
// to path.Dir(collectPath). Each file goes to FilesKey(prefix, its path
// relative to "/"), or to EncodedKey when that cannot be a key; large files
// are streamed from the tar reader, so memory stays bounded whatever the
// files' sizes.
//
// The archive comes from a container the student controlled, so no entry is
// trusted: entries that are absolute, contain "..", resolve outside
// collectPath, or are links or special files are skipped and reported;
// directories are skipped silently (S3 has none). A file past the budget's
// byte cap is skipped with ReasonSizeCap (smaller files after it are still
// collected), and every file past its file cap with ReasonFileCap. At most
// 1000 skipped entries are listed (past them, the first one of each cap and
// the first one that is a loss, so that the manifest always shows why it is
// short); a last entry without a path counts the rest.
//
// A directory below collectPath named in excludeDirs is listed once with
// ReasonExcluded, and nothing inside it is uploaded, listed or counted
// against the caps.
//
// Keys depend only on the archive, so a retried collection overwrites the
// same objects. On error, the files uploaded so far are returned with it.
func uploadTree(ctx context.Context, objs Objects, prefix, collectPath string, tarStream io.Reader, b *budget, excludeDirs []string) (files []File, skipped []Skipped, err error) {
	root := path.Clean("/" + collectPath)
	base := path.Dir(root)
	index := make(map[string]*File) // path → its entry, for repeated entries
	var entries []*File             // filled in by the uploads, in archive order
	var unlisted int64
	listed := map[string]bool{}
	// Small files upload in the background; a failure stops the archive.
	uploads, uctx := errgroup.WithContext(ctx)
	uploads.SetLimit(uploadParallel)
	defer func() { uploads.Wait() }()
	done := func() []File {
		var out []File
		for _, f := range entries {
			if f.SHA256 != "" {
				out = append(out, *f)
			}
		}
		return out
	}
	fail := func(err error) ([]File, []Skipped, error) {
		if werr := uploads.Wait(); werr != nil && errors.Is(err, context.Canceled) {
			err = werr // the upload that failed, not the cancellation it caused
		}
		return done(), skipped, fmt.Errorf("artifacts: collect %s: %w", collectPath, err)
	}
	tr := tar.NewReader(tarStream)
	for {
		if err := uctx.Err(); err != nil {
			return fail(err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(fmt.Errorf("read archive: %w", err))
		}
		rel, reason := classifyEntry(hdr, base, root)
		// Whatever an excluded directory holds is left out, links and
		// special files too: the template asked for none of it.
		if rel != "" {
			switch excluded(rel, root, excludeDirs, hdr.Typeflag == tar.TypeDir) {
			case excludedDir:
				unlisted += report(&skipped, rel, hdr.Name, ReasonExcluded, false)
				continue
			case insideExcluded:
				continue
			}
		}
		if reason == "" && hdr.Typeflag == tar.TypeDir {
			continue
		}
		if reason == "" {
			reason = b.admit(hdr.Size)
		}
		if reason != "" {
			first := !listed[reason] && (reason == ReasonSizeCap || reason == ReasonFileCap || IsLoss(reason))
			unlisted += report(&skipped, rel, hdr.Name, reason, first)
			listed[reason] = listed[reason] || first
			continue
		}
		key, shown, raw := fileKey(prefix, rel)
		f, seen := index[rel]
		if seen {
			// A later entry of a tar replaces an earlier one at the same key:
			// let the earlier upload finish first.
			if err := uploads.Wait(); err != nil {
				return fail(err)
			}
			uploads, uctx = errgroup.WithContext(ctx)
			uploads.SetLimit(uploadParallel)
		} else {
			f = &File{}
			index[rel] = f
			entries = append(entries, f)
		}
		*f = File{Path: shown, RawPath: raw, Key: key, Size: hdr.Size}
		if hdr.Size > smallFileMax {
			obj, err := objs.PutStream(uctx, key, tr, hdr.Size, contentType(shown))
			if err != nil {
				return fail(err)
			}
			failpoint.Hit("file-uploaded")
			f.SHA256 = obj.SHA256
			continue
		}
		data := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return fail(fmt.Errorf("read archive: %w", err))
		}
		uploads.Go(func() error {
			obj, err := objs.PutStream(uctx, key, bytes.NewReader(data), int64(len(data)), contentType(shown))
			if err != nil {
				return err
			}
			failpoint.Hit("file-uploaded")
			f.SHA256 = obj.SHA256 // f is this upload's own entry
			return nil
		})
	}
	if err := uploads.Wait(); err != nil {
		return fail(err)
	}
	if unlisted > 0 {
		skipped = append(skipped, Skipped{Reason: fmt.Sprintf(moreSkippedFormat, unlisted)})
	}
	return done(), skipped, nil
}

// maxSkippedListed bounds the skipped entries a manifest lists: a student
// can create any number of symlinks, and the manifest must stay readable.
const maxSkippedListed = 1000

// moreSkippedFormat is the reason of the entry, without a path, that counts
// the skipped entries not listed.
const moreSkippedFormat = "%d more skipped entries not listed"

// report lists a skipped entry, by its path if it is safe to show and by its
// raw name otherwise, and returns 1 if the list is full instead (unless
// always is set).
func report(skipped *[]Skipped, rel, name, reason string, always bool) int64 {
	if len(*skipped) >= maxSkippedListed && !always {
		return 1
	}
	p := rel
	if p == "" {
		p = name
	}
	*skipped = append(*skipped, Skipped{Path: p, Reason: reason})
	return 0
}

// classifyEntry returns the entry's path relative to "/", or why it must be
// skipped (with the path when it is safe to show one).
func classifyEntry(hdr *tar.Header, base, root string) (rel, reason string) {
	name := hdr.Name
	switch {
	case name == "" || strings.ContainsRune(name, 0):
		return "", ReasonInvalidName
	case strings.HasPrefix(name, "/"):
		return "", ReasonAbsolute
	case hasParentSegment(name):
		return "", ReasonParent
	}
	full := path.Join(base, name)
	if full != root && !strings.HasPrefix(full, strings.TrimSuffix(root, "/")+"/") {
		return "", ReasonOutside
	}
	rel = strings.TrimPrefix(full, "/")
	if rel == "" {
		// Only the root directory itself resolves to "/".
		if hdr.Typeflag == tar.TypeDir {
			return "", ""
		}
		return "", ReasonInvalidName
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse:
		if hdr.Size < 0 {
			return rel, ReasonInvalidName
		}
		return rel, ""
	case tar.TypeDir:
		return rel, ""
	case tar.TypeSymlink:
		return rel, ReasonSymlink
	case tar.TypeLink:
		return rel, ReasonHardlink
	case tar.TypeChar, tar.TypeBlock:
		return rel, ReasonDevice
	case tar.TypeFifo:
		return rel, ReasonFIFO
	}
	return rel, ReasonUnsupported
}

// exclusion is where an entry stands to the excluded directories.
type exclusion int

const (
	notExcluded    exclusion = iota
	excludedDir              // the entry is an excluded directory
	insideExcluded           // the entry is below one
)

// excluded places the entry at rel (relative to "/") against the directory
// names excludeDirs: only the segments below the collect path root count,
// so a collect path may itself be named like one. A file with an excluded
// directory's name is not excluded.
func excluded(rel, root string, excludeDirs []string, isDir bool) exclusion {
	if len(excludeDirs) == 0 {
		return notExcluded
	}
	below, ok := strings.CutPrefix("/"+rel, strings.TrimSuffix(root, "/")+"/")
	if !ok {
		return notExcluded
	}
	segs := strings.Split(strings.TrimSuffix(below, "/"), "/")
	for i, seg := range segs {
		if !slices.Contains(excludeDirs, seg) {
			continue
		}
		if i < len(segs)-1 {
			return insideExcluded
		}
		if isDir {
			return excludedDir
		}
	}
	return notExcluded
}

func hasParentSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
