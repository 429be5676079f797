package webui_test

import (
	"crypto/sha256"
	"encoding/hex"
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
		if strings.HasPrefix(p, "vendor/") {
			// Vendored files keep their authors' notices, URLs included;
			// TestVendoredFiles holds them to what was vendored.
			return nil
		}
		// SVG's namespace is a name, not an address anything is loaded from.
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, bad := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(text, bad) {
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

// TestVendoredFiles: each vendored file is listed in vendor/README.md with
// its version and SHA-256, and is exactly what was vendored; vendored code
// loads nothing (the CSP would refuse it anyway).
func TestVendoredFiles(t *testing.T) {
	files := webui.Files()
	readme, err := fs.ReadFile(files, "vendor/README.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|$").FindAllStringSubmatch(string(readme), -1) {
		listed[m[1]] = m[2]
	}
	entries, err := fs.ReadDir(files, "vendor")
	if err != nil {
		t.Fatal(err)
	}
	code := 0
	for _, e := range entries {
		name := e.Name()
		if name == "README.md" || strings.HasSuffix(name, ".LICENSE") {
			continue
		}
		code++
		b, err := fs.ReadFile(files, "vendor/"+name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		switch want, ok := listed[name]; {
		case !ok:
			t.Errorf("vendor/%s is not listed in vendor/README.md", name)
		case hex.EncodeToString(sum[:]) != want:
			t.Errorf("vendor/%s has SHA-256 %x, README.md says %s", name, sum, want)
		}
		if _, err := fs.Stat(files, "vendor/"+strings.TrimSuffix(name, ".mjs")+".LICENSE"); err != nil {
			t.Errorf("vendor/%s has no license beside it: %v", name, err)
		}
		for _, bad := range []string{"fetch(", "XMLHttpRequest", "import(", "importScripts", "eval(", "new Function"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("vendor/%s uses %s", name, bad)
			}
		}
	}
	if code == 0 {
		t.Error("nothing vendored: the link sheet's QR codes need vendor/qrcode.mjs")
	}
}

// TestModulesServedAsJavaScript: a browser runs a module only when it is
// served as JavaScript, so every module app.js imports must be.
func TestModulesServedAsJavaScript(t *testing.T) {
	srv := httptest.NewServer(webui.Handler("/ui/"))
	defer srv.Close()
	app, err := fs.ReadFile(webui.Files(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	imports := regexp.MustCompile(`(?m)^import .* from "\./([^"]+)";$`).FindAllStringSubmatch(string(app), -1)
	if len(imports) == 0 {
		t.Fatal("app.js imports nothing; the QR code library is imported from vendor/")
	}
	for _, m := range imports {
		resp, err := http.Get(srv.URL + "/ui/" + m[1])
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Errorf("app.js imports %s: %d %q", m[1], resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// TestTextStaysText: the pages show text that students' programs and
// graders wrote (a sandbox's log lines, a grader's feedback), so app.js
// never has a string parsed as HTML.
func TestTextStaysText(t *testing.T) {
	app, err := fs.ReadFile(webui.Files(), "app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "DOMParser", "createContextualFragment", "srcdoc"} {
		if strings.Contains(string(app), bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
}
