package webui_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/webui"
)

// TestNothingFromElsewhere: the machines a class runs on may have no
// internet, so the pages load every file from the apiserver.
func TestNothingFromElsewhere(t *testing.T) {
	files := webui.Files()
	n := 0
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(string(b), bad) && !(bad == "http://" && strings.HasSuffix(p, ".svg")) {
				t.Errorf("%s refers to %q", p, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Fatalf("only %d files embedded", n)
	}
}

// TestIndexNamesOnlyEmbeddedFiles: every file the page asks for is served.
func TestIndexNamesOnlyEmbeddedFiles(t *testing.T) {
	srv := httptest.NewServer(webui.Handler("/ui/"))
	defer srv.Close()
	index, err := fs.ReadFile(webui.Files(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(string(index), -1)
	if len(refs) < 3 {
		t.Fatalf("index.html names %d files", len(refs))
	}
	for _, m := range refs {
		resp, err := http.Get(srv.URL + "/ui/" + m[1])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("index.html names %s: %d", m[1], resp.StatusCode)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s served without nosniff", m[1])
		}
	}
	for path, want := range map[string]string{"app.js": "javascript", "style.css": "text/css", "": "text/html", "favicon.svg": "image/svg+xml"} {
		resp, err := http.Get(srv.URL + "/ui/" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, want) {
			t.Errorf("/ui/%s: Content-Type %q, want %s", path, ct, want)
		}
	}
	resp, err := http.Post(srv.URL+"/ui/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", resp.StatusCode)
	}
}
