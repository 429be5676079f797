package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksOnlyClients: the controller talks to the store and the artifact
// store as a client. The servers the apiserver embeds (FerretDB, the proxy in
// front of it, the versitygw supervisor) must not be linked into it: they
// would only enlarge what runs with the Docker socket, and a controller that
// could start them by mistake would serve a second store.
func TestLinksOnlyClients(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/FerretDB/",
		"github.com/homeroom/homeroom/internal/embeddedstore",
		"github.com/homeroom/homeroom/internal/versitygw",
		"github.com/versity/",
		"github.com/johannesboyne/gofakes3",
	}
	var found []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				found = append(found, pkg)
				break
			}
		}
	}
	if len(found) > 0 {
		t.Errorf("the controller links %d server packages, e.g. %s", len(found), strings.Join(found[:min(len(found), 5)], ", "))
	}
}
