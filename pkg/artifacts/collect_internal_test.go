package artifacts

import (
	"archive/tar"
	"bytes"
	"fmt"
	"path"
	"testing"
)

func TestClassifyEntry(t *testing.T) {
	tests := []struct {
		desc        string
		collectPath string
		name        string
		typ         byte
		wantRel     string
		wantReason  string
	}{
		{"regular file", "/workspace", "workspace/notes.txt", tar.TypeReg, "workspace/notes.txt", ""},
		{"dots inside a name are fine", "/workspace", "workspace/notes..txt", tar.TypeReg, "workspace/notes..txt", ""},
		{"dot segment is cleaned", "/workspace", "./workspace/./a", tar.TypeReg, "workspace/a", ""},
		{"directory", "/workspace", "workspace/src/", tar.TypeDir, "workspace/src", ""},
		{"collect path itself", "/workspace", "workspace/", tar.TypeDir, "workspace", ""},
		{"a single collected file", "/workspace/notes.txt", "notes.txt", tar.TypeReg, "workspace/notes.txt", ""},
		{"nested collect path", "/home/student/work", "work/a.txt", tar.TypeReg, "home/student/work/a.txt", ""},
		{"sibling of a nested collect path", "/home/student/work", "other.txt", tar.TypeReg, "", ReasonOutside},
		{"name sharing the collect path's prefix", "/workspace", "workspace2/a", tar.TypeReg, "", ReasonOutside},
		{"root collect path", "/", "etc/hosts", tar.TypeReg, "etc/hosts", ""},
		{"parent segment", "/workspace", "../escape", tar.TypeReg, "", ReasonParent},
		{"parent segment that stays inside", "/workspace", "workspace/a/../b", tar.TypeReg, "", ReasonParent},
		{"absolute", "/workspace", "/etc/passwd", tar.TypeReg, "", ReasonAbsolute},
		{"absolute inside the collect path", "/workspace", "/workspace/a", tar.TypeReg, "", ReasonAbsolute},
		{"not UTF-8 is collected (under an encoded key)", "/workspace", "workspace/\xff", tar.TypeReg, "workspace/\xff", ""},
		{"empty", "/workspace", "", tar.TypeReg, "", ReasonInvalidName},
		{"symlink", "/workspace", "workspace/l", tar.TypeSymlink, "workspace/l", ReasonSymlink},
		{"hardlink", "/workspace", "workspace/h", tar.TypeLink, "workspace/h", ReasonHardlink},
		{"block device", "/workspace", "workspace/sda", tar.TypeBlock, "workspace/sda", ReasonDevice},
		{"fifo", "/workspace", "workspace/p", tar.TypeFifo, "workspace/p", ReasonFIFO},
		{"unknown type", "/workspace", "workspace/x", 'Z', "workspace/x", ReasonUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			root := path.Clean("/" + tc.collectPath)
			rel, reason := classifyEntry(&tar.Header{Name: tc.name, Typeflag: tc.typ}, path.Dir(root), root)
			if rel != tc.wantRel || reason != tc.wantReason {
				t.Errorf("classifyEntry(%q in %s) = %q, %q; want %q, %q", tc.name, tc.collectPath, rel, reason, tc.wantRel, tc.wantReason)
			}
		})
	}
}

func TestCheckKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"classes/c/r/s/files/workspace/a.txt": true,
		"a b/ü.txt":                           true,
		"":                                    false,
		"/a":                                  false,
		"a/../b":                              false,
		"a/./b":                               false,
		"a//b":                                false,
		"a/":                                  false,
	} {
		if err := checkKey(key); (err == nil) != ok {
			t.Errorf("checkKey(%q) = %v, want ok=%v", key, err, ok)
		}
	}
}

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in         string
		secure     bool
		wantHost   string
		wantSecure bool
		wantErr    bool
	}{
		{"127.0.0.1:7070", false, "127.0.0.1:7070", false, false},
		{"s3.example.com", true, "s3.example.com", true, false},
		{"http://127.0.0.1:7070", true, "127.0.0.1:7070", false, false},
		{"https://s3.example.com/", false, "s3.example.com", true, false},
		{"https://s3.example.com/bucket", false, "", false, true},
		{"ftp://x", false, "", false, true},
		{"", false, "", false, true},
	}
	for _, tc := range tests {
		host, secure, err := parseEndpoint(tc.in, tc.secure)
		if (err != nil) != tc.wantErr || host != tc.wantHost || secure != tc.wantSecure {
			t.Errorf("parseEndpoint(%q, %v) = %q, %v, %v", tc.in, tc.secure, host, secure, err)
		}
	}
}

func TestPartSizeFor(t *testing.T) {
	s := &Store{cfg: Config{PartSize: DefaultPartSize}}
	if got := s.partSizeFor(-1); got != DefaultPartSize {
		t.Errorf("unknown size: %d", got)
	}
	if got := s.partSizeFor(1 << 30); got != DefaultPartSize {
		t.Errorf("1 GiB: %d", got)
	}
	huge := int64(DefaultPartSize)*maxParts + 1
	if got := s.partSizeFor(huge); got*maxParts < uint64(huge) || got%(1<<20) != 0 {
		t.Errorf("%d bytes: part size %d does not fit %d parts", huge, got, maxParts)
	}
}

func TestUploadTreeBoundsSkippedList(t *testing.T) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for i := range maxSkippedListed + 5 {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("workspace/l%d", i), Linkname: "/etc"}); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	// Nothing is uploaded, so the store needs no server.
	files, skipped, err := (&Store{}).UploadTree(t.Context(), "p/", "/workspace", &buf, 0)
	if err != nil || len(files) != 0 {
		t.Fatalf("UploadTree = %v, %v", files, err)
	}
	if len(skipped) != maxSkippedListed+1 {
		t.Fatalf("%d skipped entries listed, want %d", len(skipped), maxSkippedListed+1)
	}
	if last := skipped[len(skipped)-1]; last != (Skipped{Reason: "5 more skipped entries not listed"}) {
		t.Errorf("last skipped entry = %+v", last)
	}
}

// Past a full list, the first entry skipped for the size cap is listed all
// the same, so that the manifest shows the cap was hit; later ones are
// counted like the rest.
func TestUploadTreeListsSizeCapPastAFullList(t *testing.T) {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for i := range maxSkippedListed + 2 {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: fmt.Sprintf("workspace/l%d", i), Linkname: "/etc"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"workspace/big1", "workspace/big2"} {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 10}); err != nil {
			t.Fatal(err)
		}
		w.Write(make([]byte, 10))
	}
	w.Close()
	files, skipped, err := (&Store{}).UploadTree(t.Context(), "p/", "/workspace", &buf, 5)
	if err != nil || len(files) != 0 {
		t.Fatalf("UploadTree = %v, %v", files, err)
	}
	if len(skipped) != maxSkippedListed+2 {
		t.Fatalf("%d skipped entries listed, want %d", len(skipped), maxSkippedListed+2)
	}
	if got := skipped[maxSkippedListed]; got != (Skipped{Path: "workspace/big1", Reason: ReasonSizeCap}) {
		t.Errorf("entry after the full list = %+v, want big1 over the size cap", got)
	}
	if last := skipped[len(skipped)-1]; last != (Skipped{Reason: "3 more skipped entries not listed"}) {
		t.Errorf("last skipped entry = %+v", last)
	}
	m := &Manifest{Skipped: skipped}
	m.Finish()
	if !m.Truncated || skippedCount(m.Skipped) != maxSkippedListed+2+2 {
		t.Errorf("finished manifest: truncated %v, %d skipped", m.Truncated, skippedCount(m.Skipped))
	}
}

func TestSkippedCount(t *testing.T) {
	for _, tc := range []struct {
		skipped []Skipped
		want    int
	}{
		{nil, 0},
		{[]Skipped{{Path: "a", Reason: ReasonSymlink}}, 1},
		{[]Skipped{{Path: "a", Reason: ReasonSymlink}, {Reason: fmt.Sprintf(moreSkippedFormat, 41)}}, 42},
		// An entry without a path that is not the count is one entry.
		{[]Skipped{{Reason: ReasonInvalidName}}, 1},
		{[]Skipped{{Reason: "0 more skipped entries not listed"}}, 1},
	} {
		if got := skippedCount(tc.skipped); got != tc.want {
			t.Errorf("skippedCount(%+v) = %d, want %d", tc.skipped, got, tc.want)
		}
	}
}
