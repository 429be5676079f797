package policy

import (
	"strings"
	"testing"
	"time"
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
	if tmpl.Internet || tmpl.Pinned() {
		t.Errorf("the lab image is a local tag without internet: %+v", tmpl)
	}
	want := Quota{MaxStudentsPerClass: 60, MaxClassesUp: 5, MaxContainers: 150, MaxCPUs: 75, MaxMemoryMiB: 20480}
	if q := p.Quota("any-subject"); q != want {
		t.Errorf("built-in quota = %+v, want %+v", q, want)
	}
	if got := tmpl.CollectMaxBytes(); got != 256<<20 {
		t.Errorf("default collect cap = %d", got)
	}
	var nilTemplate *Template
	if nilTemplate.CollectMaxBytes() != 256<<20 {
		t.Error("a template gone from the policy must still get a collection cap")
	}
}

// tmpl is a valid templates section of two lines.
const tmpl = "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n"

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
		{"short digest", "templates:\n  - {name: a, image: x@sha256:abc, port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "line 2: template 1 (\"a\"): image \"x@sha256:abc\": a sha256 digest is 64 lower-case hex digits"},
		{"upper-case digest", "templates:\n  - {name: a, image: x@sha256:" + strings.Repeat("AB", 32) + ", port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "line 2: template 1 (\"a\"): image"},
		{"other digest algorithm", "templates:\n  - {name: a, image: x@sha512:" + strings.Repeat("ab", 64) + ", port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "line 2: template 1 (\"a\"): image \"x@sha512:"},
		{"digest without repository", "templates:\n  - {name: a, image: \"@sha256:" + strings.Repeat("ab", 32) + "\", port: 80, memoryMiB: 1, cpus: 1, pids: 1}\n", "no repository"},
		{"internet not a bool", "templates:\n  - name: a\n    image: x\n    port: 80\n    memoryMiB: 1\n    cpus: 1\n    pids: 1\n    internet: maybe\n", "line 8"},
		{"cpus not a number", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: .nan, pids: 1}\n", "line 2: template 1 (\"a\"): cpus must be a positive number"},
		{"negative default", tmpl + "defaults:\n  maxClassesUp: 2\n  maxContainers: -1\n", "line 5: defaults: maxContainers must be a number not below 0 (0 inherits), got -1"},
		{"unknown default", tmpl + "defaults:\n  maxClassesUp: 2\n  maxGPUs: 1\n", "line 5: field maxGPUs not found"},
		{"default of the wrong type", tmpl + "defaults:\n  maxClassesUp: many\n", "line 4"},
		{"infinite default", tmpl + "defaults:\n  maxCPUs: .inf\n", "line 4: defaults: maxCPUs must be a number"},
		{"bad subject name", tmpl + "subjects:\n  cs101: {maxClassesUp: 1}\n  CS_102: {maxClassesUp: 1}\n", "line 5: subjects: subject \"CS_102\" must match"},
		{"negative subject limit", tmpl + "subjects:\n  cs101:\n    maxClassesUp: 1\n    maxCPUs: -0.5\n", "line 6: subject \"cs101\": maxCPUs must be a number not below 0 (0 inherits), got -0.5"},
		{"unknown subject limit", tmpl + "subjects:\n  cs101: {maxStudents: 3}\n", "line 4: field maxStudents not found"},
		{"subject listed twice", tmpl + "subjects:\n  cs101: {maxClassesUp: 1}\n  cs101: {maxClassesUp: 2}\n", "line 5"},
		{"subjects as a list", tmpl + "subjects:\n  - cs101\n", "line 4"},
		{"readiness path not absolute", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: api}}\n", "line 2: template 1 (\"a\"): readiness path \"api\" must start with /"},
		{"readiness path with a space", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: \"/api HTTP/1.0\"}}\n", "only printable ASCII"},
		{"readiness path with a line break", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: \"/api\\r\\nX: y\"}}\n", "only printable ASCII"},
		{"readiness timeout negative", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: /api, timeoutSeconds: -1}}\n", "readiness timeoutSeconds must be between 1 and 3600"},
		{"readiness timeout too long", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: /api, timeoutSeconds: 86400}}\n", "readiness timeoutSeconds must be between 1 and 3600"},
		{"grader without image", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {command: [/g]}}\n", "line 2: template 1 (\"a\"): grader: image is required"},
		{"grader as root", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, user: \"0:0\"}}\n", "grader: user \"0:0\" must be a numeric uid:gid other than root's"},
		{"grader user by name", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, user: nobody}}\n", "numeric uid:gid"},
		{"grader timeout too long", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, timeoutSeconds: 7200}}\n", "grader: timeoutSeconds must be between 1 and 3600"},
		{"grader memory too small", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, memoryMiB: 4}}\n", "grader: memoryMiB must be between 16"},
		{"grader pids unbounded", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, pids: -1}}\n", "grader: pids must be between 8"},
		{"grader unknown key", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, network: host}}\n", "line 2: field network not found"},
		{"readiness unknown key", "templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: /api, port: 9}}\n", "line 2: field port not found"},
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

func TestParseGood(t *testing.T) {
	digest := "sha256:" + strings.Repeat("0123456789abcdef", 4)
	p, err := Parse([]byte(`templates:
  - name: pinned
    image: registry.example/lab@` + digest + `
    port: 8080
    memoryMiB: 256
    cpus: 1
    pids: 128
    internet: true
  - name: tagged
    image: homeroom/sandbox:dev
    port: 8080
    memoryMiB: 128
    cpus: 0.5
    pids: 64
defaults:
  maxClassesUp: 2
subjects:
  cs101: {maxStudentsPerClass: 40}
  bio:
`))
	if err != nil {
		t.Fatal(err)
	}
	pinned, _ := p.Template("pinned")
	tagged, _ := p.Template("tagged")
	if !pinned.Pinned() || !pinned.Internet {
		t.Errorf("pinned = %+v, Pinned() %v", pinned, pinned.Pinned())
	}
	if tagged.Pinned() || tagged.Internet {
		t.Errorf("internet must default to false and a tag is not pinned: %+v", tagged)
	}
	if n := p.TemplateNames(); strings.Join(n, ",") != "pinned,tagged" {
		t.Errorf("names = %v", n)
	}
	// Limits the file leaves out come from the built-in defaults.
	builtin := Default().Defaults
	if p.Defaults.MaxClassesUp != 2 || p.Defaults.MaxContainers != builtin.MaxContainers || p.Defaults.MaxCPUs != builtin.MaxCPUs {
		t.Errorf("defaults = %+v", p.Defaults)
	}
}

func TestQuotaInheritance(t *testing.T) {
	p, err := Parse([]byte(tmpl + `
defaults:
  maxStudentsPerClass: 30
  maxClassesUp: 4
  maxContainers: 100
  maxCPUs: 20
  maxMemoryMiB: 8192
subjects:
  cs101: {maxStudentsPerClass: 40, maxClassesUp: 3}
  art: {maxCPUs: 2.5, maxMemoryMiB: 0}
  empty: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	defaults := Quota{MaxStudentsPerClass: 30, MaxClassesUp: 4, MaxContainers: 100, MaxCPUs: 20, MaxMemoryMiB: 8192}
	tests := []struct {
		subject string
		want    Quota
	}{
		{"cs101", Quota{MaxStudentsPerClass: 40, MaxClassesUp: 3, MaxContainers: 100, MaxCPUs: 20, MaxMemoryMiB: 8192}},
		{"art", Quota{MaxStudentsPerClass: 30, MaxClassesUp: 4, MaxContainers: 100, MaxCPUs: 2.5, MaxMemoryMiB: 8192}},
		{"empty", defaults},
		{"unlisted", defaults},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			if got := p.Quota(tc.subject); got != tc.want {
				t.Errorf("Quota(%q) = %+v, want %+v", tc.subject, got, tc.want)
			}
		})
	}
}

// A readiness check without a timeout gets the default; the built-in
// notebook template has one on Jupyter's API.
func TestReadinessDefaults(t *testing.T) {
	p, err := Parse([]byte("templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, readiness: {path: /api}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.Template("a")
	if a.Readiness == nil || a.Readiness.Timeout() != 120*time.Second {
		t.Errorf("readiness = %+v, want /api within 120 s", a.Readiness)
	}
	nb, ok := Default().Template("notebook")
	if !ok || nb.Readiness == nil || nb.Readiness.Path != "/api" {
		t.Errorf("built-in notebook template's readiness = %+v", nb)
	}
	if sb, _ := Default().Template("sandbox"); sb.Readiness != nil {
		t.Errorf("the sandbox template has a readiness check: %+v", sb.Readiness)
	}
}

func TestGraderDefaults(t *testing.T) {
	p, err := Parse([]byte("templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, grader: {image: g, command: [/g, --x]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tm, _ := p.Template("a")
	g := tm.Grader
	if g.User != "1000:1000" || g.UID() != 1000 || g.GID() != 1000 || g.Timeout() != 120*time.Second ||
		g.MemoryMiB != 512 || g.CPUs != 1 || g.PIDs != 128 {
		t.Fatalf("grader defaults = %+v", g)
	}
}
