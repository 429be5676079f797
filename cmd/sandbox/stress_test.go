package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary stand in for the sandbox when /stress/fork
// re-executes /proc/self/exe as "sleep".
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "sleep" {
		os.Exit(sleep(os.Args[2]))
	}
	os.Exit(m.Run())
}

func newTestSandbox(t *testing.T) http.Handler {
	t.Helper()
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return (&sandbox{class: "c", student: "s", root: root}).routes()
}

func do(t *testing.T, h http.Handler, method, url string, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, url, nil))
	if into != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, rec.Body)
		}
	}
	return rec.Code
}

func TestStressRejectsBadInput(t *testing.T) {
	h := newTestSandbox(t)
	for _, url := range []string{
		"/stress/fork", "/stress/fork?n=0", "/stress/fork?n=-1", "/stress/fork?n=100001", "/stress/fork?n=x",
		"/stress/fork?n=1&hold=61", "/stress/fork?n=1&hold=-1",
		"/stress/memory", "/stress/memory?mib=-1", "/stress/memory?mib=65537", "/stress/memory?mib=1e3",
		"/stress/write", "/stress/write?path=etc/x",
	} {
		if code := do(t, h, http.MethodPost, url, nil); code != http.StatusBadRequest {
			t.Errorf("POST %s = %d, want 400", url, code)
		}
	}
	if code := do(t, h, http.MethodGet, "/stress/fork?n=1", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /stress/fork = %d, want 405", code)
	}
}

func TestStressForkStartsAndReapsChildren(t *testing.T) {
	h := newTestSandbox(t)
	var res forkResult
	if code := do(t, h, http.MethodPost, "/stress/fork?n=3", &res); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	if res.Requested != 3 || res.Started != 3 || res.Error != "" || res.Crashed != 0 {
		t.Errorf("result %+v", res)
	}
}

func TestStressMemoryAllocatesAndReleases(t *testing.T) {
	h := newTestSandbox(t)
	var res struct{ Allocated int }
	if code := do(t, h, http.MethodPost, "/stress/memory?mib=8", &res); code != http.StatusOK || res.Allocated != 8 {
		t.Fatalf("status %d, %+v", code, res)
	}
	if code := do(t, h, http.MethodPost, "/stress/memory?mib=0", &res); code != http.StatusOK || res.Allocated != 0 {
		t.Fatalf("release: status %d, %+v", code, res)
	}
}

func TestStressWriteProbesWithoutChanging(t *testing.T) {
	h := newTestSandbox(t)
	dir := t.TempDir()
	fresh := filepath.Join(dir, "new")
	var res writeResult
	if do(t, h, http.MethodPost, "/stress/write?path="+fresh, &res); !res.Writable {
		t.Errorf("fresh file in a writable dir: %+v", res)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("probe left %s behind: %v", fresh, err)
	}
	existing := filepath.Join(dir, "old")
	os.WriteFile(existing, []byte("keep"), 0o644)
	if do(t, h, http.MethodPost, "/stress/write?path="+existing, &res); !res.Writable {
		t.Errorf("existing file: %+v", res)
	}
	if b, _ := os.ReadFile(existing); string(b) != "keep" {
		t.Errorf("probe changed the file: %q", b)
	}
	res = writeResult{}
	if do(t, h, http.MethodPost, "/stress/write?path="+filepath.Join(dir, "no/such/dir/x"), &res); res.Writable || res.Error == "" {
		t.Errorf("missing directory: %+v", res)
	}
}
