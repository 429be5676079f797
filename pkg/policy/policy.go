// Package policy holds the server-side allowlist of templates a class may use
// and the quotas of each subject. Teachers name a template; everything a
// container is made of comes from here, and admission (Admit) decides whether
// a class may be Up at all.
package policy

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"go.yaml.in/yaml/v3"
)

//go:embed default.yaml
var defaultPolicy []byte

// Template is an approved sandbox image and the limits it runs with.
type Template struct {
	Name         string            `yaml:"name" json:"name"`
	Image        string            `yaml:"image" json:"image"`
	Description  string            `yaml:"description,omitempty" json:"description,omitempty"`
	Command      []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Env          map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Port         int               `yaml:"port" json:"port"`
	WorkingDir   string            `yaml:"workingDir,omitempty" json:"workingDir,omitempty"`
	User         string            `yaml:"user,omitempty" json:"user,omitempty"`
	CollectPaths []string          `yaml:"collectPaths,omitempty" json:"collectPaths"`
	MemoryMiB    int64             `yaml:"memoryMiB" json:"memoryMiB"`
	CPUs         float64           `yaml:"cpus" json:"cpus"`
	PIDs         int64             `yaml:"pids" json:"pids"`
	// ReadOnlyRootFS keeps the image read-only; the collect paths are then
	// volumes, since the archive API cannot read tmpfs.
	ReadOnlyRootFS bool `yaml:"readOnlyRootFS" json:"readOnlyRootFS"`
	// CollectExcludeDirs names directories, at any depth below a collect
	// path, that are not collected: caches the tools make beside the work
	// (.ipynb_checkpoints, __pycache__) that would fill every run.
	CollectExcludeDirs []string `yaml:"collectExcludeDirs,omitempty" json:"collectExcludeDirs,omitempty"`
	// CollectMaxMiB caps what is collected of one student on Down (default
	// 256); files past it are left out and listed in the manifest.
	CollectMaxMiB int64 `yaml:"collectMaxMiB,omitempty" json:"collectMaxMiB"`
	// CollectMaxFiles caps how many files are collected of one student
	// (default 10000): each is an object, and the manifest lists them all.
	CollectMaxFiles int `yaml:"collectMaxFiles,omitempty" json:"collectMaxFiles"`
	// AutosaveMinutes is how often the work of a class that is Up is
	// collected as an autosave (default 10): a lost host, disk or daemon
	// costs at most that much work.
	AutosaveMinutes int `yaml:"autosaveMinutes,omitempty" json:"autosaveMinutes"`
	// WorkspaceMiB caps what one student's work volumes may hold (default
	// 1024). Docker's local volumes on overlay2 cannot enforce a size, so
	// Homeroom measures them: a sandbox past its cap is autosaved, then
	// stopped, and reported.
	WorkspaceMiB int64 `yaml:"workspaceMiB,omitempty" json:"workspaceMiB"`
	// Internet gives the class network a route out. It is off unless the
	// template asks: students then share an internal network that reaches
	// nothing but their classmates and Traefik.
	Internet bool `yaml:"internet" json:"internet"`
	// Collaboration lets classmates' sandboxes reach each other directly.
	// It is off unless the template asks: each sandbox then answers only
	// Traefik, which checks every request's sign-in first.
	Collaboration bool `yaml:"collaboration" json:"collaboration"`
	// Readiness, when set, is what a sandbox must answer before its
	// student counts as running: a program that takes seconds to start
	// (Jupyter) would otherwise meet its student with a 502.
	Readiness *Readiness `yaml:"readiness,omitempty" json:"readiness,omitempty"`
	// Grader, when set, grades every student collected by a Down of a
	// class of this template (see Grader).
	Grader *Grader `yaml:"grader,omitempty" json:"grader,omitempty"`
}

// Readiness is an HTTP check of a sandbox on its class network: a GET of
// Path on the template's port that answers 2xx or 3xx.
type Readiness struct {
	Path string `yaml:"path" json:"path"`
	// TimeoutSeconds is how long after its start a sandbox may take to
	// answer (default 120); past it, it is reported as not ready, with its
	// last log lines, and still checked.
	TimeoutSeconds int `yaml:"timeoutSeconds,omitempty" json:"timeoutSeconds"`
}

// Timeout is how long a sandbox may take to answer its readiness check.
func (r *Readiness) Timeout() time.Duration {
	return time.Duration(r.TimeoutSeconds) * time.Second
}

const (
	defaultReadinessSeconds = 120
	maxReadinessSeconds     = 3600
	maxReadinessPath        = 256
)

func (r *Readiness) normalize() error {
	if !strings.HasPrefix(r.Path, "/") || len(r.Path) > maxReadinessPath {
		return fmt.Errorf("readiness path %.40q must start with / and be at most %d bytes", r.Path, maxReadinessPath)
	}
	for _, c := range r.Path {
		// The path goes into a request line as it is.
		if c <= ' ' || c == 0x7f || c == '#' || c > '~' {
			return fmt.Errorf("readiness path %.40q: only printable ASCII, without spaces or #, may be in it", r.Path)
		}
	}
	if r.TimeoutSeconds < 0 || r.TimeoutSeconds > maxReadinessSeconds {
		return fmt.Errorf("readiness timeoutSeconds must be between 1 and %d", maxReadinessSeconds)
	}
	if r.TimeoutSeconds == 0 {
		r.TimeoutSeconds = defaultReadinessSeconds
	}
	return nil
}

// Pinned reports whether the image is named by digest (repo@sha256:…), so
// that what runs cannot change under the same name. Tags stay allowed: the
// built-in lab image is a local tag.
func (t *Template) Pinned() bool {
	return t != nil && strings.Contains(t.Image, "@sha256:")
}

var sha256Hex = regexp.MustCompile(`^[a-f0-9]{64}$`)

// checkImage accepts a tag or a sha256 digest; a digest must be well formed,
// since a typo there would otherwise surface only when Docker refuses it.
func checkImage(image string) error {
	if image == "" {
		return fmt.Errorf("image is required")
	}
	if strings.ContainsAny(image, " \t\n") {
		return fmt.Errorf("image %q contains white space", image)
	}
	repo, digest, ok := strings.Cut(image, "@")
	if !ok {
		return nil
	}
	if repo == "" {
		return fmt.Errorf("image %q names a digest but no repository", image)
	}
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return fmt.Errorf("image %q: only sha256 digests are supported (repo@sha256:<64 hex digits>)", image)
	}
	if !sha256Hex.MatchString(hex) {
		return fmt.Errorf("image %q: a sha256 digest is 64 lower-case hex digits", image)
	}
	return nil
}

// CollectMaxBytes is the collection cap in bytes; a nil template (one removed
// from the policy since the class came up) gets the default.
func (t *Template) CollectMaxBytes() int64 {
	if t == nil || t.CollectMaxMiB <= 0 {
		return defaultCollectMaxMiB << 20
	}
	return t.CollectMaxMiB << 20
}

const defaultCollectMaxMiB = 256

// CollectMaxFileCount is the file cap; a nil template gets the default.
func (t *Template) CollectMaxFileCount() int {
	if t == nil || t.CollectMaxFiles <= 0 {
		return defaultCollectMaxFiles
	}
	return t.CollectMaxFiles
}

// defaultCollectMaxFiles keeps a manifest of long paths well under the
// 64 MiB a reader accepts.
const defaultCollectMaxFiles = 10000

// AutosaveInterval is how often a class's work is autosaved while Up; a nil
// template gets the default.
func (t *Template) AutosaveInterval() time.Duration {
	if t == nil || t.AutosaveMinutes <= 0 {
		return defaultAutosaveMinutes * time.Minute
	}
	return time.Duration(t.AutosaveMinutes) * time.Minute
}

const defaultAutosaveMinutes = 10

// WorkspaceBytes is the cap on a student's work volumes; a nil template
// gets the default.
func (t *Template) WorkspaceBytes() int64 {
	if t == nil || t.WorkspaceMiB <= 0 {
		return defaultWorkspaceMiB << 20
	}
	return t.WorkspaceMiB << 20
}

const defaultWorkspaceMiB = 1024

// maxCollectMaxFiles bounds what a policy may ask for, for the same reason.
const maxCollectMaxFiles = 50000

// Policy is the parsed policy file.
type Policy struct {
	Templates []Template `yaml:"templates"`
	// Defaults is the quota of every subject without its own entry, and what
	// an entry inherits for the limits it leaves out. After Parse every limit
	// in it is set: what the file leaves out (or sets to 0) comes from the
	// built-in policy.
	Defaults Quota `yaml:"defaults"`
	// Subjects overrides Defaults per subject; a limit left out or 0 inherits.
	Subjects map[string]Quota `yaml:"subjects"`
	byName   map[string]*Template
}

// Default returns the built-in policy.
func Default() *Policy {
	p, err := parse(defaultPolicy, Quota{})
	if err != nil {
		panic(fmt.Sprintf("built-in policy: %v", err))
	}
	return p
}

// builtinDefaults is the floor of every policy's defaults, so that a file
// which says nothing about quotas is bounded all the same.
var builtinDefaults = sync.OnceValue(func() Quota { return Default().Defaults })

// Load reads the policy at file, or the built-in one when file is empty.
func Load(file string) (*Policy, error) {
	if file == "" {
		return Default(), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	return p, nil
}

// Parse decodes and validates a policy; errors name the line at fault.
// Quota limits it leaves out come from the built-in policy.
func Parse(b []byte) (*Policy, error) {
	return parse(b, builtinDefaults())
}

func parse(b []byte, floor Quota) (*Policy, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var p Policy
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	lines := templateLines(&root)
	p.byName = make(map[string]*Template, len(p.Templates))
	for i := range p.Templates {
		t := &p.Templates[i]
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		if err := t.normalize(); err != nil {
			return nil, fmt.Errorf("line %d: template %d (%q): %w", line, i+1, t.Name, err)
		}
		if _, dup := p.byName[t.Name]; dup {
			return nil, fmt.Errorf("line %d: template %q is defined twice", line, t.Name)
		}
		p.byName[t.Name] = t
	}
	if len(p.Templates) == 0 {
		return nil, fmt.Errorf("the policy defines no templates")
	}
	if err := p.resolveQuotas(topLevel(&root), floor); err != nil {
		return nil, err
	}
	return &p, nil
}

// topLevel returns the document's top mapping, or nil.
func topLevel(root *yaml.Node) *yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	return root.Content[0]
}

// lookup returns the key and value nodes of key in mapping m, or nils.
func lookup(m *yaml.Node, key string) (k, v *yaml.Node) {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i], m.Content[i+1]
		}
	}
	return nil, nil
}

// lineOf is the line of key in mapping m, else of m itself, else 0.
func lineOf(m *yaml.Node, key string) int {
	if k, _ := lookup(m, key); k != nil {
		return k.Line
	}
	if m != nil {
		return m.Line
	}
	return 0
}

// templateLines returns the line of each item of the top-level templates list.
func templateLines(root *yaml.Node) []int {
	_, list := lookup(topLevel(root), "templates")
	if list == nil {
		return nil
	}
	var out []int
	for _, item := range list.Content {
		out = append(out, item.Line)
	}
	return out
}

func (t *Template) normalize() error {
	if err := api.ValidateID("template name", t.Name); err != nil {
		return err
	}
	if err := checkImage(t.Image); err != nil {
		return err
	}
	if t.Port < 1 || t.Port > 65535 {
		return fmt.Errorf("port %d is not between 1 and 65535", t.Port)
	}
	if len(t.CollectPaths) == 0 {
		t.CollectPaths = []string{"/workspace"}
	}
	for _, c := range t.CollectPaths {
		if !path.IsAbs(c) || path.Clean(c) != c || c == "/" {
			return fmt.Errorf("collect path %q must be a clean absolute directory other than /", c)
		}
	}
	if len(t.CollectExcludeDirs) > maxCollectExcludeDirs {
		return fmt.Errorf("collectExcludeDirs names %d directories, at most %d", len(t.CollectExcludeDirs), maxCollectExcludeDirs)
	}
	for _, d := range t.CollectExcludeDirs {
		if err := CheckDirName(d); err != nil {
			return fmt.Errorf("collectExcludeDirs: %w", err)
		}
	}
	if t.CollectMaxMiB < 0 {
		return fmt.Errorf("collectMaxMiB must not be negative")
	}
	if t.CollectMaxMiB == 0 {
		t.CollectMaxMiB = defaultCollectMaxMiB
	}
	if t.CollectMaxFiles < 0 || t.CollectMaxFiles > maxCollectMaxFiles {
		return fmt.Errorf("collectMaxFiles must be between 1 and %d", maxCollectMaxFiles)
	}
	if t.CollectMaxFiles == 0 {
		t.CollectMaxFiles = defaultCollectMaxFiles
	}
	if t.AutosaveMinutes < 0 || t.AutosaveMinutes > 24*60 {
		return fmt.Errorf("autosaveMinutes must be between 1 and %d", 24*60)
	}
	if t.AutosaveMinutes == 0 {
		t.AutosaveMinutes = defaultAutosaveMinutes
	}
	if t.WorkspaceMiB < 0 {
		return fmt.Errorf("workspaceMiB must not be negative")
	}
	if t.WorkspaceMiB == 0 {
		t.WorkspaceMiB = defaultWorkspaceMiB
	}
	if t.MemoryMiB <= 0 {
		return fmt.Errorf("memoryMiB must be positive")
	}
	if !(t.CPUs > 0) || math.IsInf(t.CPUs, 0) {
		return fmt.Errorf("cpus must be a positive number")
	}
	if t.PIDs <= 0 {
		return fmt.Errorf("pids must be positive")
	}
	if t.Readiness != nil {
		if err := t.Readiness.normalize(); err != nil {
			return err
		}
	}
	if t.Grader != nil {
		return t.Grader.normalize()
	}
	return nil
}

// maxCollectExcludeDirs bounds the list, which every container carries in
// a label.
const maxCollectExcludeDirs = 32

// CheckDirName accepts the name of one directory, such as __pycache__: not a
// path, since a directory of that name is left out wherever it is.
func CheckDirName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%q is not a directory name", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("%q is not a directory name: a name, not a path, is left out at any depth", name)
	case len(name) > 255:
		return fmt.Errorf("directory name %.20q… is longer than 255 bytes", name)
	}
	return nil
}

// Template returns the named template.
func (p *Policy) Template(name string) (*Template, bool) {
	t, ok := p.byName[name]
	return t, ok
}

// TemplateNames lists the allowlist, sorted.
func (p *Policy) TemplateNames() []string {
	names := make([]string, 0, len(p.byName))
	for n := range p.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
