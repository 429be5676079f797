package policy

import (
	"strings"
	"testing"
)

func TestDefaultPolicy(t *testing.T) {
	p := Default()
	tmpl, ok := p.Template("sandbox")
	if !ok {
		t.Fatal("the built-in policy has no sandbox template")
	}
	if tmpl.Image != "homeroom/sandbox:dev" || tmpl.Port != 8080 || tmpl.CollectPaths[0] != "/workspace" || !tmpl.ReadOnlyRootFS || tmpl.User == "" {
		t.Errorf("sandbox template = %+v", tmpl)
	}
	if got := tmpl.CollectMaxBytes(); got != 256<<20 {
		t.Errorf("default collect cap = %d", got)
	}
	var nilTemplate *Template
	if nilTemplate.CollectMaxBytes() != 256<<20 {
		t.Error("a template gone from the policy must still get a collection cap")
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		desc, yaml, want string
	}{
		{"unknown key", "templates:\n  - name: a\n    image: x\n    port: 80\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n    privileged: true\n", "line 8"},
		{"missing image", "templates:\n  - name: a\n    port: 80\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n", "line 2: template 1 (\"a\"): image is required"},
		{"port out of range", "templates:\n  - name: ok\n    image: x\n    port: 80\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n  - name: b\n    image: x\n    port: 70000\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n", "line 8: template 2 (\"b\"): port 70000"},
		{"relative collect path", "templates:\n  - name: a\n    image: x\n    port: 80\n    collectPaths: [work]\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n", "collect path \"work\""},
		{"no memory limit", "templates:\n  - name: a\n    image: x\n    port: 80\n    cpus: 1\n    pids: 1\n", "memoryMiB must be positive"},
		{"duplicate name", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n  - {name: a, image: y, port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "line 3: template \"a\" is defined twice"},
		{"bad name", "templates:\n  - {name: A_B, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "template name \"A_B\""},
		{"wrong type", "templates:\n  - {name: a, image: x, port: eighty, memoryMiB: 1, cpus: 1, pids: 1}\n", "line 2"},
		{"no templates", "templates: []\n", "no templates"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load("/nonexistent/policy.yaml"); err == nil || !strings.Contains(err.Error(), "read policy") {
		t.Errorf("error = %v", err)
	}
}
