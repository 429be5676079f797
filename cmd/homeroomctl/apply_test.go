package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"go.yaml.in/yaml/v3"
)

// TestGetApplyRoundTrip: what get -o yaml|json prints is applied as it is,
// written only over the class at its resourceVersion: a file another write
// has overtaken is refused (exit 2) with nothing written, unless --force.
func TestGetApplyRoundTrip(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK, "class/cs101-a created (generation 1)")
	e.setStatus("cs101-a", api.PhaseDown, "removed") // a status with students, as the controller writes it

	// get -o yaml: the API's names, in block style, the status included.
	r := e.run("get", "cs101-a", "-o", "yaml")
	r.want(t, exitOK, "id: cs101-a\n", "spec:\n", "  ttlSeconds: 7200\n", "resourceVersion: 2\n", "status:\n", "    - id: alice\n")
	var asYAML, asJSON map[string]any
	if err := yaml.Unmarshal([]byte(r.out), &asYAML); err != nil {
		t.Fatalf("get -o yaml is not YAML: %v\n%s", err, r.out)
	}
	j := e.run("get", "cs101-a", "-o", "json")
	j.want(t, exitOK)
	json.Unmarshal([]byte(j.out), &asJSON)
	if asYAML["resourceVersion"] != 2 || asYAML["createdAt"] == nil || len(asYAML) != len(asJSON) {
		t.Errorf("get -o yaml %v does not hold what -o json does %v", asYAML, asJSON)
	}
	got := filepath.Join(dir, "got.yaml")
	os.WriteFile(got, []byte(r.out), 0o644)

	// Applied unchanged: nothing to write.
	e.run("apply", "-f", got).want(t, exitOK, "class/cs101-a configured (generation 1)")

	// Edited and applied: written, status and the rest ignored.
	edited := filepath.Join(dir, "edited.yaml")
	os.WriteFile(edited, []byte(strings.Replace(r.out, "    - carol\n", "    - carol\n    - dave\n", 1)), 0o644)
	e.run("apply", "-f", edited).want(t, exitOK, "class/cs101-a configured (generation 2)")
	cl, err := e.store.Get(context.Background(), "cs101-a")
	if err != nil || !slices.Equal(cl.Spec.Students, []string{"alice", "bob", "carol", "dave"}) || cl.Spec.TTLSeconds != 7200 ||
		cl.Status.Phase != api.PhaseDown || cl.DesiredPhase != api.PhaseDown {
		t.Fatalf("after apply of the edited file: %+v, %v", cl, err)
	}

	// The first file is now stale: refused, exit 2, saying what to do,
	// and nothing is written.
	stale := filepath.Join(dir, "stale.yaml")
	os.WriteFile(stale, []byte(strings.Replace(r.out, "  ttlSeconds: 7200\n", "  ttlSeconds: 60\n", 1)), 0o644)
	r = e.run("apply", "-f", stale)
	r.want(t, exitRefused, "class cs101-a has changed since the version in", "resourceVersion 2", "now at 3", "nothing was written",
		"homeroomctl get cs101-a -o yaml", "--force", "precondition_failed")
	after, _ := e.store.Get(context.Background(), "cs101-a")
	if !reflect.DeepEqual(cl, after) {
		t.Fatalf("a refused apply wrote the class:\nbefore %+v\nafter  %+v", cl, after)
	}
	// -o json says the same on stderr, and prints nothing.
	r = e.run("-o", "json", "apply", "-f", stale)
	r.want(t, exitRefused, "has changed since")
	if r.out != "" {
		t.Errorf("a refused apply -o json printed %q", r.out)
	}

	// --force overwrites whatever the class is now.
	e.run("apply", "-f", stale, "--force").want(t, exitOK, "class/cs101-a configured (generation 3)")
	if cl, _ := e.store.Get(context.Background(), "cs101-a"); cl.Spec.TTLSeconds != 60 || len(cl.Spec.Students) != 3 {
		t.Fatalf("after --force: %+v", cl.Spec)
	}

	// The controller's status writes move resourceVersion on too: a file
	// got before one is stale as well.
	r = e.run("get", "cs101-a", "-o", "json")
	e.setStatus("cs101-a", api.PhaseDown, "removed")
	e.runStdin(strings.Replace(r.out, `"ttlSeconds": 60`, `"ttlSeconds": 120`, 1), "apply", "-f", "-").
		want(t, exitRefused, "has changed since")
	// JSON from get, got again, round-trips.
	r = e.run("get", "cs101-a", "-o", "json")
	e.runStdin(strings.Replace(r.out, `"ttlSeconds": 60`, `"ttlSeconds": 120`, 1), "apply", "-f", "-").
		want(t, exitOK, "class/cs101-a configured (generation 4)")

	// A class the file has a resourceVersion of but that is gone is not
	// created again, unless --force.
	e.runStdin("id: gone\nresourceVersion: 4\nspec: {subject: cs101, template: sandbox, students: [a]}\n", "apply", "-f", "-").
		want(t, exitRefused, "class gone no longer exists", "--force")
	if _, err := e.store.Get(context.Background(), "gone"); err == nil {
		t.Fatal("a refused apply created the class")
	}
	e.runStdin("id: gone\nresourceVersion: 4\nspec: {subject: cs101, template: sandbox, students: [a]}\n", "apply", "-f", "-", "--force").
		want(t, exitOK, "class/gone created (generation 1)")

	// Bad files are exit 1, without asking the server.
	e.runStdin("id: x\nsubject: cs101\nspec: {subject: cs101, template: sandbox, students: [a]}\n", "apply", "-f", "-").
		want(t, exitUsage, "not both")
	e.runStdin("id: x\nspec: {subject: cs101, template: sandbox, students: [a], colour: red}\n", "apply", "-f", "-").
		want(t, exitUsage, "colour")
	e.runStdin(`{"id": "x", "resourceVersion": -2, "spec": {"subject": "cs101", "template": "sandbox", "students": ["a"]}}`, "apply", "-f", "-").
		want(t, exitUsage, "resourceVersion -2")
	e.run("list", "-o", "yaml").want(t, exitUsage, "table or json")
}
