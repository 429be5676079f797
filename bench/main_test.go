package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePairs(t *testing.T) {
	for _, c := range []struct {
		pairs string
		sizes []int
		want  []int
	}{
		{"", []int{10, 50, 100}, []int{5, 5, 3}},
		{"", []int{5, 51, 100}, []int{5, 3, 3}},
		{"4", []int{10, 50, 100}, []int{4, 4, 4}},
		{"1, 2,3", []int{10, 50, 100}, []int{1, 2, 3}},
	} {
		got, err := parsePairs(c.pairs, c.sizes)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parsePairs(%q, %v) = %v, %v; want %v", c.pairs, c.sizes, got, err, c.want)
		}
	}
	for _, bad := range []string{"0", "x", "2,3", "51", "3,,3"} {
		if got, err := parsePairs(bad, []int{10, 50, 100}); err == nil {
			t.Errorf("parsePairs(%q) = %v, want an error", bad, got)
		}
	}
}

func TestParseParts(t *testing.T) {
	got, err := parseParts("swarm, classes")
	if err != nil || len(got) != 2 || !got["swarm"] || !got["classes"] {
		t.Errorf("parseParts(swarm, classes) = %v, %v", got, err)
	}
	if got, err := parseParts("all"); err != nil || len(got) != len(allParts) {
		t.Errorf("parseParts(all) = %v, %v", got, err)
	}
	for _, bad := range []string{"", "class", "classes,"} {
		if got, err := parseParts(bad); err == nil {
			t.Errorf("parseParts(%q) = %v, want an error", bad, got)
		}
	}
}

func TestExplainPrintsTheClassesWarningsAndRetries(t *testing.T) {
	log := filepath.Join(t.TempDir(), "controller.log")
	lines := `{"level":"info","msg":"executing plan","classId":"a"}
{"level":"warn","msg":"pass failed","classId":"a","error":"remove network: has active endpoints"}
{"level":"info","msg":"pass failed, will retry","classId":"a","in":"4s"}
{"level":"warn","msg":"pass failed","classId":"b"}
not json
{"level":"error","msg":"status write","classId":"a"}
`
	if err := os.WriteFile(log, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	(&process{name: "controller", log: log}).explain(&out, "a")
	got := out.String()
	for _, want := range []string{"has active endpoints", `"in":"4s"`, "status write"} {
		if !strings.Contains(got, want) {
			t.Errorf("explain lacks %q:\n%s", want, got)
		}
	}
	for _, not := range []string{"executing plan", `"classId":"b"`, "not json"} {
		if strings.Contains(got, not) {
			t.Errorf("explain has %q:\n%s", not, got)
		}
	}
}

func TestSinceReadsTheStatusTime(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 400_700_000, time.UTC)
	// The store keeps milliseconds: a status time in the request's own
	// millisecond is not before it.
	same := start.Truncate(time.Millisecond)
	later := start.Add(2500 * time.Millisecond)
	if d, err := since(start, &later, "status.upAt"); err != nil || d != 2500*time.Millisecond {
		t.Errorf("since = %v, %v; want 2.5s", d, err)
	}
	if d, err := since(start, &same, "status.upAt"); err != nil || d != 0 {
		t.Errorf("since in the same millisecond = %v, %v; want 0", d, err)
	}
	earlier := start.Add(-time.Second)
	for _, at := range []*time.Time{nil, &earlier} {
		if d, err := since(start, at, "status.upAt"); err == nil || !strings.Contains(err.Error(), "status.upAt") {
			t.Errorf("since(%v) = %v, %v; want an error naming the field", at, d, err)
		}
	}
}

func TestIdleShare(t *testing.T) {
	if got := idleShare([2]float64{100, 1000}, [2]float64{190, 1100}); got != 0.9 {
		t.Errorf("idleShare = %v, want 0.9", got)
	}
	// Nothing to compare (no /proc/stat, or no time passed): not idle, so
	// that settle waits its longest rather than not at all.
	if got := idleShare([2]float64{}, [2]float64{}); got != 0 {
		t.Errorf("idleShare of nothing = %v, want 0", got)
	}
	if got := cpuTimes(); got[1] <= 0 || got[0] > got[1] {
		t.Errorf("cpuTimes() = %v: want idle within a positive total", got)
	}
}
