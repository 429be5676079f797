package policy

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README shows the built-in policy and a template for a public notebook
// image; both must be what Homeroom accepts, and the first what it embeds.
func TestREADMEPolicyExamples(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	block := func(after string) string {
		t.Helper()
		_, rest, ok := strings.Cut(readme, after)
		if !ok {
			t.Fatalf("README has no %q", after)
		}
		_, rest, ok = strings.Cut(rest, "```yaml\n")
		if !ok {
			t.Fatalf("no yaml block after %q", after)
		}
		yaml, _, _ := strings.Cut(rest, "```\n")
		return yaml
	}
	if got := block("### Policy\n"); got != string(defaultPolicy) {
		t.Errorf("the README's built-in policy is not pkg/policy/default.yaml:\n%s", got)
	}
	public := block("**A public image instead.**")
	public = regexp.MustCompile(`sha256:<[^>]*>`).ReplaceAllString(public, "sha256:"+strings.Repeat("0", 64))
	p, err := Parse([]byte("templates:\n" + public))
	if err != nil {
		t.Fatalf("the README's public notebook template: %v\n%s", err, public)
	}
	lab, ok := p.Template("jupyterlab")
	if !ok || !lab.Pinned() || !lab.ReadOnlyRootFS || lab.Internet {
		t.Errorf("the README's public notebook template: %+v", lab)
	}
}
