package policy

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
)

// The built-in notebook template runs the image scripts/ensure-notebook.sh
// builds, and is as locked down as the sandbox.
func TestBuiltinNotebookTemplate(t *testing.T) {
	p := Default()
	nb, ok := p.Template("notebook")
	if !ok {
		t.Fatalf("the built-in policy has no notebook template: %v", p.TemplateNames())
	}
	// The script tags the image with images/notebook/VERSION; a policy
	// naming another tag would run an image no machine has.
	v, err := os.ReadFile("../../images/notebook/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	if want := "homeroom/notebook:" + strings.TrimSpace(string(v)); nb.Image != want {
		t.Errorf("image %q, want %q (images/notebook/VERSION)", nb.Image, want)
	}
	if nb.Port != 8888 || nb.User != "1000:1000" || nb.WorkingDir != "/home/jovyan" {
		t.Errorf("port %d, user %q, working dir %q", nb.Port, nb.User, nb.WorkingDir)
	}
	if !slices.Equal(nb.CollectPaths, []string{"/home/jovyan"}) {
		t.Errorf("collect paths %v: the home is the notebook directory and the only writable place besides /tmp", nb.CollectPaths)
	}
	for _, d := range []string{".ipynb_checkpoints", "__pycache__"} {
		if !slices.Contains(nb.CollectExcludeDirs, d) {
			t.Errorf("collect exclusions %v leave %s in", nb.CollectExcludeDirs, d)
		}
	}
	if !nb.ReadOnlyRootFS || nb.Internet || nb.Collaboration || nb.Pinned() {
		t.Errorf("read-only %v, internet %v, collaboration %v, pinned %v", nb.ReadOnlyRootFS, nb.Internet, nb.Collaboration, nb.Pinned())
	}
	// Measured (README, "The notebook template"): Jupyter and a kernel that
	// imported numpy and plotted with matplotlib take about 150 MiB and 30
	// threads; the limits leave a student room for data and a few kernels.
	if nb.MemoryMiB < 384 || nb.PIDs < 96 || nb.CPUs < 1 {
		t.Errorf("limits %d MiB, %d pids, %g cpus are below what a notebook with numpy needs", nb.MemoryMiB, nb.PIDs, nb.CPUs)
	}
	if nb.Command != nil || len(nb.Env) != 0 {
		t.Errorf("command %v, env %v: the image's own are meant", nb.Command, nb.Env)
	}

	// The template is what a policy file may say too.
	b := fmt.Appendf(nil, `templates:
  - name: notebook
    image: %s
    port: %d
    user: %q
    workingDir: %s
    collectPaths: [%s]
    collectExcludeDirs: [%s]
    memoryMiB: %d
    cpus: %g
    pids: %d
    readOnlyRootFS: true
`, nb.Image, nb.Port, nb.User, nb.WorkingDir, strings.Join(nb.CollectPaths, ", "), strings.Join(nb.CollectExcludeDirs, ", "), nb.MemoryMiB, nb.CPUs, nb.PIDs)
	if _, err := Parse(b); err != nil {
		t.Errorf("the notebook template as a policy file: %v\n%s", err, b)
	}
}

// Adding the notebook changed nothing of the sandbox: its containers keep
// their config hash.
func TestBuiltinSandboxUnchanged(t *testing.T) {
	sb, _ := Default().Template("sandbox")
	want := Template{
		Name: "sandbox", Description: sb.Description, Image: "homeroom/sandbox:dev", Port: 8080, User: "65534:65534",
		CollectPaths: []string{"/workspace"}, MemoryMiB: 128, CPUs: 0.5, PIDs: 64, ReadOnlyRootFS: true,
		CollectMaxMiB: 256, CollectMaxFiles: 10000, AutosaveMinutes: 10, WorkspaceMiB: 1024,
	}
	if fmt.Sprintf("%+v", *sb) != fmt.Sprintf("%+v", want) {
		t.Errorf("sandbox = %+v\nwant      %+v", *sb, want)
	}
}

// A class of notebooks as large as the bench's fits the built-in quota.
func TestBuiltinQuotaAdmitsANotebookClass(t *testing.T) {
	p := Default()
	students := make([]string, 30)
	for i := range students {
		students[i] = fmt.Sprintf("s%02d", i)
	}
	spec := api.ClassSpec{Subject: "cs101", Template: "notebook", Students: students}
	if err := p.Admit(spec, Usage{}); err != nil {
		t.Errorf("a class of 30 notebooks: %v", err)
	}
}

func TestCollectExcludeDirs(t *testing.T) {
	tests := []struct {
		desc, dirs, want string
	}{
		{"names", "[.ipynb_checkpoints, __pycache__, node_modules]", ""},
		{"a path", "[work/__pycache__]", `collectExcludeDirs: "work/__pycache__" is not a directory name`},
		{"an absolute path", "[/tmp]", `"/tmp" is not a directory name`},
		{"dot", `["."]`, `"." is not a directory name`},
		{"dot dot", `[".."]`, `".." is not a directory name`},
		{"empty", `[""]`, `"" is not a directory name`},
		{"NUL", `["a\0b"]`, `is not a directory name`},
		{"too long", "[" + strings.Repeat("x", 256) + "]", "longer than 255 bytes"},
		{"too many", "[" + strings.Repeat("d, ", 32) + "d]", "names 33 directories, at most 32"},
		{"not a list", "__pycache__", "line 2"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte("templates:\n  - {name: a, image: x, port: 80, memoryMiB: 1, cpus: 1, pids: 1, collectExcludeDirs: " + tc.dirs + "}\n"))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("error = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "line 2") {
				t.Errorf("error %q names no line", err)
			}
		})
	}
}
