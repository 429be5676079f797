package artifacts

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"mime"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/homeroom/homeroom/internal/failpoint"
)

// File is one collected file.
type File struct {
	// Path is relative to "/" in the container, e.g. "workspace/notes.txt".
	Path   string `json:"path"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
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
)

// FilesKey is where a file collected at rel (relative to "/") is stored.
func FilesKey(prefix, rel string) string { return prefix + "files/" + rel }

// UploadTree uploads the regular files of a tar stream as returned by
// Docker's CopyFromContainer for collectPath, whose entry names are relative
// to path.Dir(collectPath). Each file goes to FilesKey(prefix, its path
// relative to "/"), streamed from the tar reader: memory stays bounded by
// the part size whatever the files' sizes.
//
// The archive comes from a container the student controlled, so no entry is
// trusted: entries that are absolute, contain "..", resolve outside
// collectPath, or are links or special files are skipped and reported;
// directories are skipped silently (S3 has none). With maxBytes > 0, a file
// that would take the total beyond maxBytes is skipped with ReasonSizeCap;
// smaller files after it are still collected. At most 1000 skipped entries
// are listed (and, past them, the first one skipped for the size cap, so
// that the manifest always shows the cap was hit); a last entry without a
// path counts the rest.
//
// Keys depend only on the archive, so a retried collection overwrites the
// same objects. On error, the files uploaded so far are returned with it.
func (s *Store) UploadTree(ctx context.Context, prefix, collectPath string, tarStream io.Reader, maxBytes int64) (files []File, skipped []Skipped, err error) {
	root := path.Clean("/" + collectPath)
	base := path.Dir(root)
	index := make(map[string]int) // path → position in files, for repeated entries
	var total, unlisted int64
	capListed := false
	tr := tar.NewReader(tarStream)
	for {
		if err := ctx.Err(); err != nil {
			return files, skipped, fmt.Errorf("artifacts: collect %s: %w", collectPath, err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if unlisted > 0 {
				skipped = append(skipped, Skipped{Reason: fmt.Sprintf(moreSkippedFormat, unlisted)})
			}
			return files, skipped, nil
		}
		if err != nil {
			return files, skipped, fmt.Errorf("artifacts: collect %s: read archive: %w", collectPath, err)
		}
		rel, reason := classifyEntry(hdr, base, root)
		if reason == "" && hdr.Typeflag == tar.TypeDir {
			continue
		}
		key := FilesKey(prefix, rel)
		if reason == "" && checkKey(key) != nil {
			reason = ReasonInvalidName
		}
		if reason == "" && maxBytes > 0 && total+hdr.Size > maxBytes {
			reason = ReasonSizeCap
		}
		if reason != "" {
			first := reason == ReasonSizeCap && !capListed
			unlisted += report(&skipped, rel, hdr.Name, reason, first)
			capListed = capListed || first
			continue
		}
		obj, err := s.PutStream(ctx, key, tr, hdr.Size, contentType(rel))
		if err != nil {
			return files, skipped, fmt.Errorf("artifacts: collect %s: %w", collectPath, err)
		}
		failpoint.Hit("file-uploaded")
		total += obj.Size
		f := File{Path: rel, Key: key, Size: obj.Size, SHA256: obj.SHA256}
		if i, ok := index[rel]; ok {
			// A later entry of a tar replaces an earlier one, and so did the
			// upload to the same key.
			files[i] = f
			continue
		}
		index[rel] = len(files)
		files = append(files, f)
	}
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
	case name == "" || !utf8.ValidString(name) || strings.ContainsRune(name, 0):
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
