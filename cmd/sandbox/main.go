// Command sandbox is the program in Homeroom's default lab image. It tells a
// visitor whose sandbox this is, serves the student's workspace and lets the
// student save files into it; Homeroom collects the workspace on Down.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxUpload bounds one saved file so that one request cannot fill the disk.
const maxUpload = 64 << 20

func main() {
	// "sandbox probe URL" answers whether URL can be reached from where the
	// container runs; an image FROM scratch has no curl to ask instead, and
	// isolation between class networks is checked this way.
	if (len(os.Args) == 3 || len(os.Args) == 4) && os.Args[1] == "probe" {
		host := ""
		if len(os.Args) == 4 {
			host = os.Args[3]
		}
		os.Exit(probe(os.Args[2], host))
	}
	// "sandbox sleep SECONDS" is the child /stress/fork starts: with no
	// shell or sleep(1) in the image, the sandbox re-executes itself.
	if len(os.Args) == 3 && os.Args[1] == "sleep" {
		os.Exit(sleep(os.Args[2]))
	}
	if err := run(); err != nil {
		log.Printf("sandbox: %v", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", envOr("HOMEROOM_LISTEN", ":8080"), "address to serve on")
	dir := flag.String("workspace", envOr("HOMEROOM_WORKSPACE", "/workspace"), "the student's workspace")
	flag.Parse()

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	// os.Root confines every file operation to the workspace, so a name
	// such as "../etc/passwd" or a planted symlink cannot escape it.
	root, err := os.OpenRoot(*dir)
	if err != nil {
		return err
	}
	defer root.Close()

	s := &sandbox{
		class:   os.Getenv("HOMEROOM_CLASS"),
		student: os.Getenv("HOMEROOM_STUDENT"),
		root:    root,
	}
	srv := &http.Server{
		Addr:              *listen,
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		WriteTimeout:      5 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("sandbox of %s in class %s serving %s on %s", s.student, s.class, *dir, *listen)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

type sandbox struct {
	class, student string
	root           *os.Root
	stress         stress
}

func (s *sandbox) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /files/{name...}", s.get)
	mux.HandleFunc("PUT /files/{name...}", s.put)
	mux.HandleFunc("POST /files/{name...}", s.put)
	// A student's program may crash; this lets a lesson (or a test) end the
	// sandbox with a chosen exit code the way a crashing program would.
	mux.HandleFunc("POST /exit", s.exit)
	// What a student's program could do to the machine, on demand, so that a
	// lesson on resource limits can watch the limits hold (see stress.go).
	mux.HandleFunc("POST /stress/fork", s.stressFork)
	mux.HandleFunc("POST /stress/memory", s.stressMemory)
	mux.HandleFunc("POST /stress/write", s.stressWrite)
	return mux
}

type indexBody struct {
	Class   string   `json:"class"`
	Student string   `json:"student"`
	Files   []string `json:"files"`
}

func (s *sandbox) index(w http.ResponseWriter, r *http.Request) {
	files := []string{}
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(indexBody{Class: s.class, Student: s.student, Files: files})
}

func cleanName(raw string) (string, error) {
	name := path.Clean(raw)
	if raw == "" || name == "." || strings.HasPrefix(name, "../") || name == ".." || path.IsAbs(raw) {
		return "", fmt.Errorf("invalid file name %q", raw)
	}
	return name, nil
}

func (s *sandbox) get(w http.ResponseWriter, r *http.Request) {
	name, err := cleanName(r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := s.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	io.Copy(w, f)
}

func (s *sandbox) put(w http.ResponseWriter, r *http.Request) {
	name, err := cleanName(r.PathValue("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if dir := path.Dir(name); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	// Write to a temporary name and rename, so a collection never sees half a file.
	tmp := name + ".part"
	f, err := s.root.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n, err := io.Copy(f, http.MaxBytesReader(w, r.Body, maxUpload))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, name)
	}
	if err != nil {
		s.root.Remove(tmp)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(map[string]any{"file": name, "size": n})
}

func (s *sandbox) exit(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Query().Get("code"))
	if err != nil || code < 0 || code > 255 {
		http.Error(w, "code must be 0..255", http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	log.Printf("exiting with code %d on request", code)
	go func() {
		time.Sleep(100 * time.Millisecond)
		os.Exit(code)
	}()
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// probe exits 0 when url answers (with host as the Host header, when
// given), 1 when it cannot be reached; it prints the answer's status.
// Exit 3 means it answered but refused (4xx), so that a test can tell
// "refused by the sign-in check" from "not reachable" without a shell.
func probe(url, host string) int {
	c := &http.Client{Timeout: 3 * time.Second}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fmt.Println("bad url:", err)
		return 1
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		fmt.Println("unreachable:", err)
		return 1
	}
	resp.Body.Close()
	fmt.Println("reachable:", resp.Status)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return 3
	}
	return 0
}
