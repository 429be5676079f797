package main

// The /stress endpoints do on request what any student's program could do
// inside the sandbox: start processes until the kernel refuses, allocate
// memory until the kernel kills it, write outside the workspace. They give
// nothing a student does not already have — the sandbox runs the student's
// own code — and exist so that a lesson on resource limits, and Homeroom's
// hardening tests (test/hardening), can show that the container's limits,
// not the program's good manners, are what stop it: the PIDs limit refuses
// the fork, the memory limit OOM-kills the hog, the read-only root and the
// unprivileged user refuse the write.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net/http"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Bounds on what one request may ask for: far beyond any container's limits,
// so that the kernel, not these checks, is what stops an attempt, but finite.
const (
	maxForks       = 100000
	maxHoldSeconds = 60
	maxMemoryMiB   = 65536
	maxSleep       = 24 * time.Hour
)

// stress is the state of the stress endpoints: one attempt of each kind at a
// time, and the memory the last /stress/memory holds.
type stress struct {
	forking sync.Mutex
	memory  sync.Mutex
	held    [][]byte
}

// queryInt parses an integer parameter in [min, max]; def is used when it is
// absent, unless def < min, which makes it required.
func queryInt(r *http.Request, name string, def, min, max int) (int, error) {
	raw := r.URL.Query().Get(name)
	if raw == "" {
		if def < min {
			return 0, fmt.Errorf("%s is required (%d..%d)", name, min, max)
		}
		return def, nil
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v < min || v > max {
		return 0, fmt.Errorf("%s must be an integer in %d..%d", name, min, max)
	}
	return v, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type forkResult struct {
	Requested int `json:"requested"`
	// Started is how many children were started before the kernel refused.
	Started int `json:"started"`
	// Error is why the next one could not be, typically EAGAIN ("resource
	// temporarily unavailable") from the PIDs limit; empty if all started.
	Error string `json:"error,omitempty"`
	// Crashed counts children that started but exited by themselves before
	// they were killed: a Go child that cannot create its own threads under
	// the PIDs limit aborts.
	Crashed     int `json:"crashed"`
	HeldSeconds int `json:"heldSeconds"`
}

// stressFork handles POST /stress/fork?n=N[&hold=S]: it starts up to N
// children (the sandbox itself, re-executed as "sandbox sleep"), keeps them
// for S seconds (default 0) so that the container's process count can be
// watched at its peak, then kills and reaps them all, so that the sandbox
// has its process slots back and keeps serving.
func (s *sandbox) stressFork(w http.ResponseWriter, r *http.Request) {
	n, err := queryInt(r, "n", -1, 1, maxForks)
	if err == nil {
		var hold int
		hold, err = queryInt(r, "hold", 0, 0, maxHoldSeconds)
		if err == nil {
			s.fork(w, r, n, hold)
			return
		}
	}
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func (s *sandbox) fork(w http.ResponseWriter, r *http.Request, n, hold int) {
	if !s.stress.forking.TryLock() {
		http.Error(w, "a fork attempt is already running", http.StatusConflict)
		return
	}
	defer s.stress.forking.Unlock()

	const self = "/proc/self/exe"
	// Children outlive a hold only by a margin, in case one escapes the kill.
	sleepFor := strconv.Itoa(hold + 60)
	attr := &os.ProcAttr{Files: []*os.File{nil, os.Stderr, os.Stderr}}
	children := make([]*os.Process, 0, min(n, 1024))
	res := forkResult{Requested: n, HeldSeconds: hold}
	for len(children) < n {
		p, err := os.StartProcess(self, []string{self, "sleep", sleepFor}, attr)
		if err != nil {
			res.Error = err.Error()
			break
		}
		children = append(children, p)
	}
	res.Started = len(children)
	log.Printf("stress/fork: started %d of %d children (%s); holding %ds", res.Started, n, errOrNone(res.Error), hold)

	if hold > 0 {
		t := time.NewTimer(time.Duration(hold) * time.Second)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	// Kill every child first, then reap: reaping is what gives the kernel
	// the process slots back (a zombie still counts against the limit).
	for _, p := range children {
		p.Signal(syscall.SIGKILL) // fails only for one that exited already
	}
	for _, p := range children {
		st, err := p.Wait()
		if err == nil && !signaledBy(st, syscall.SIGKILL) {
			res.Crashed++
		}
	}
	writeJSON(w, http.StatusOK, res)
}

func errOrNone(s string) string {
	if s == "" {
		return "no error"
	}
	return s
}

func signaledBy(st *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// sleep is the "sandbox sleep SECONDS" subcommand.
func sleep(arg string) int {
	secs, err := strconv.Atoi(arg)
	if err != nil || secs < 0 || time.Duration(secs)*time.Second > maxSleep {
		fmt.Fprintf(os.Stderr, "sleep: want seconds in 0..%d, got %q\n", int(maxSleep.Seconds()), arg)
		return 2
	}
	time.Sleep(time.Duration(secs) * time.Second)
	return 0
}

// stressMemory handles POST /stress/memory?mib=N: it allocates N MiB in 1 MiB
// chunks, writes to every page so that the memory is really used (untouched
// pages cost nothing), and holds it until the next call (mib=0 releases
// it). Over the container's memory limit the kernel OOM-kills the sandbox
// in the middle of the request; the answer then never comes.
func (s *sandbox) stressMemory(w http.ResponseWriter, r *http.Request) {
	mib, err := queryInt(r, "mib", -1, 0, maxMemoryMiB)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.stress.memory.Lock()
	defer s.stress.memory.Unlock()
	s.stress.held = nil
	debug.FreeOSMemory()

	log.Printf("stress/memory: allocating %d MiB", mib)
	page := os.Getpagesize()
	held := make([][]byte, 0, mib)
	for range mib {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += page {
			b[i] = 1
		}
		held = append(held, b)
	}
	s.stress.held = held
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writeJSON(w, http.StatusOK, map[string]any{"allocated": mib, "heapMiB": ms.HeapAlloc >> 20})
}

type writeResult struct {
	Path     string `json:"path"`
	Writable bool   `json:"writable"`
	Error    string `json:"error,omitempty"`
}

// stressWrite handles POST /stress/write?path=/abs/path: it tries to open the
// path for writing, outside the workspace's confinement, as a student's
// program would. A missing file is created and removed again; an existing
// one is only opened, never changed. The answer says whether the open
// succeeded and, if not, the kernel's reason (e.g. read-only file system).
func (s *sandbox) stressWrite(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if !path.IsAbs(p) || len(p) > 4096 {
		http.Error(w, "path must be absolute", http.StatusBadRequest)
		return
	}
	res := writeResult{Path: p}
	var f *os.File
	_, err := os.Lstat(p)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	} else {
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	}
	if err != nil {
		res.Error = err.Error()
	} else {
		res.Writable = true
		f.Close()
		if created {
			os.Remove(p)
		}
	}
	log.Printf("stress/write %s: writable %v %s", p, res.Writable, res.Error)
	writeJSON(w, http.StatusOK, res)
}
