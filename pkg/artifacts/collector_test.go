package artifacts_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
)

func TestRulesMergeNeverCollectsLess(t *testing.T) {
	recorded := artifacts.Rules{Paths: []string{"/workspace"}, MaxBytes: 100, MaxFiles: 10}
	now := artifacts.Rules{Paths: []string{"/data", "/workspace/sub"}, MaxBytes: 50, MaxFiles: 20}
	got := now.Merge(recorded)
	if want := []string{"/data", "/workspace"}; !slices.Equal(sortedPaths(got), want) {
		t.Errorf("paths %v, want %v (a path inside another is collected with it)", got.Paths, want)
	}
	if got.MaxBytes != 100 || got.MaxFiles != 20 {
		t.Errorf("caps %d bytes %d files, want the larger of each", got.MaxBytes, got.MaxFiles)
	}
	if got := (artifacts.Rules{}).Merge(artifacts.Rules{}); !slices.Equal(got.Paths, []string{"/workspace"}) {
		t.Errorf("no rules at all collect %v", got.Paths)
	}
}

func sortedPaths(r artifacts.Rules) []string {
	p := slices.Clone(r.Paths)
	slices.Sort(p)
	return p
}

func TestRulesLabelRoundTrip(t *testing.T) {
	tmpl, _ := policy.Default().Template("sandbox")
	r := artifacts.RulesFor(tmpl)
	got := artifacts.RulesFromLabels(map[string]string{api.LabelCollect: r.Label()})
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip %+v, want %+v", got, r)
	}
	for _, bad := range []string{"", "{", `{"paths":["relative","/ok/../x","/","/fine"]}`} {
		got := artifacts.RulesFromLabels(map[string]string{api.LabelCollect: bad})
		if slices.ContainsFunc(got.Paths, func(p string) bool { return p != "/fine" }) {
			t.Errorf("label %q gave paths %v", bad, got.Paths)
		}
	}
	if got := artifacts.RulesFor(nil); !slices.Equal(got.Paths, []string{"/workspace"}) || got.MaxFiles <= 0 || got.MaxBytes <= 0 {
		t.Errorf("a template gone from the policy: %+v", got)
	}
}

// The streamed manifest is the manifest encoding/json would write.
func TestEncodeManifestMatchesJSON(t *testing.T) {
	code := 3
	for _, m := range []*artifacts.Manifest{
		{ClassID: "c", StudentID: "s", RunID: "r", CollectedAt: time.Unix(5, 0).UTC()},
		{ClassID: "c", Subject: "cs", StudentID: "s", RunID: "r", Container: artifacts.ContainerInfo{ExitCode: &code},
			Files:   []artifacts.File{{Path: "workspace/a\"b", Key: "k", Size: 1, SHA256: "x"}, {Path: "workspace/\uFFFD", RawPath: "/w==", Key: "e", Size: 2}},
			Skipped: []artifacts.Skipped{{Path: "workspace/l", Reason: artifacts.ReasonSymlink}}, Truncated: true, Incomplete: true},
	} {
		m.Finish()
		var buf bytes.Buffer
		if err := artifacts.EncodeManifest(&buf, m); err != nil {
			t.Fatal(err)
		}
		var got, want any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("streamed manifest is not JSON: %v\n%s", err, buf.String())
		}
		b, _ := json.Marshal(m)
		json.Unmarshal(b, &want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("streamed\n%s\nwant\n%s", buf.String(), b)
		}
		if !strings.HasSuffix(buf.String(), "}\n") {
			t.Errorf("no final newline")
		}
	}
}

// Only what the template's rules would have kept makes a collection
// incomplete; its own caps and the links it never collects do not.
func TestFinishMarksLossIncomplete(t *testing.T) {
	for _, tc := range []struct {
		reasons           []string
		incomplete, trunc bool
	}{
		{[]string{artifacts.ReasonSymlink, artifacts.ReasonHardlink, artifacts.ReasonDevice, artifacts.ReasonFIFO, artifacts.ReasonMissingPath}, false, false},
		{[]string{artifacts.ReasonSizeCap}, false, true},
		{[]string{artifacts.ReasonFileCap, "12 more skipped entries not listed"}, false, true},
		{[]string{artifacts.ReasonAbsolute}, true, false},
		{[]string{artifacts.ReasonUnsupported, artifacts.ReasonSizeCap}, true, true},
		{[]string{artifacts.ReasonInvalidName}, true, false},
	} {
		m := &artifacts.Manifest{}
		for _, r := range tc.reasons {
			m.Skipped = append(m.Skipped, artifacts.Skipped{Path: "workspace/x", Reason: r})
		}
		m.Finish()
		if m.Incomplete != tc.incomplete || m.Truncated != tc.trunc {
			t.Errorf("%v: incomplete %v truncated %v, want %v %v", tc.reasons, m.Incomplete, m.Truncated, tc.incomplete, tc.trunc)
		}
	}
}

// The notebook's exclusions travel in the container's label; a template
// that excludes nothing writes the label it always did, so containers made
// before exclusions existed keep their config hash.
func TestRulesExcludeDirsLabel(t *testing.T) {
	nb, _ := policy.Default().Template("notebook")
	r := artifacts.RulesFor(nb)
	if !slices.Equal(r.ExcludeDirs, []string{".ipynb_checkpoints", "__pycache__"}) {
		t.Errorf("notebook rules exclude %v", r.ExcludeDirs)
	}
	got := artifacts.RulesFromLabels(map[string]string{api.LabelCollect: r.Label()})
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip %+v, want %+v", got, r)
	}
	sb, _ := policy.Default().Template("sandbox")
	if l := artifacts.RulesFor(sb).Label(); l != `{"paths":["/workspace"],"maxBytes":268435456,"maxFiles":10000}` {
		t.Errorf("sandbox label %s", l)
	}
	bad := artifacts.RulesFromLabels(map[string]string{api.LabelCollect: `{"paths":["/w"],"excludeDirs":["a/b","..","","ok"]}`})
	if !slices.Equal(bad.ExcludeDirs, []string{"ok"}) {
		t.Errorf("a label's exclusions that are not directory names: kept %q", bad.ExcludeDirs)
	}
}

// Merging keeps only what both exclude: neither side collects less.
func TestRulesMergeExcludesOnlyWhatBothExclude(t *testing.T) {
	a := artifacts.Rules{Paths: []string{"/w"}, ExcludeDirs: []string{"__pycache__", ".ipynb_checkpoints"}}
	b := artifacts.Rules{Paths: []string{"/w"}, ExcludeDirs: []string{".ipynb_checkpoints", "node_modules"}}
	if got := a.Merge(b).ExcludeDirs; !slices.Equal(got, []string{".ipynb_checkpoints"}) {
		t.Errorf("merged exclusions %v", got)
	}
	if got := a.Merge(artifacts.Rules{}).ExcludeDirs; got != nil {
		t.Errorf("merged with rules that exclude nothing: %v", got)
	}
}
