// Package webui holds Homeroom's teacher pages: static files embedded in the
// apiserver binary, so that they work on a machine with no internet and
// need no build step. The pages talk to the API with the token the teacher
// signs in with; the files themselves hold nothing secret and are served
// without one.
package webui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed assets
var assets embed.FS

// Files returns the pages' files (index.html, app.js, style.css, …).
func Files() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	return sub
}

// ContentSecurityPolicy allows the pages only their own files and the API
// of their own origin: no inline script, nothing from elsewhere, no framing.
// A file a teacher downloads is handed over as a blob URL.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the pages under prefix (such as "/ui/"). Only GET and
// HEAD are answered; a path that names no file gets 404, not the index,
// since the pages route by the URL's fragment.
func Handler(prefix string) http.Handler {
	files := http.FileServerFS(Files())
	return http.StripPrefix(strings.TrimSuffix(prefix, "/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// The files carry no version in their names: a browser asks again
		// each time, so a new apiserver's pages are used at once.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}
