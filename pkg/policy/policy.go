// Package policy holds the server-side allowlist of templates a class may use.
// Teachers name a template; everything a container is made of comes from here.
package policy

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"path"
	"sort"

	"github.com/homeroom/homeroom/pkg/api"
	"gopkg.in/yaml.v3"
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
	// CollectMaxMiB caps what is collected of one student on Down (default
	// 256); files past it are left out and listed in the manifest.
	CollectMaxMiB int64 `yaml:"collectMaxMiB,omitempty" json:"collectMaxMiB"`
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

// Policy is the parsed policy file.
type Policy struct {
	Templates []Template `yaml:"templates"`
	byName    map[string]*Template
}

// Default returns the built-in policy.
func Default() *Policy {
	p, err := Parse(defaultPolicy)
	if err != nil {
		panic(fmt.Sprintf("built-in policy: %v", err))
	}
	return p
}

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
func Parse(b []byte) (*Policy, error) {
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
	return &p, nil
}

// templateLines returns the line of each item of the top-level templates list.
func templateLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "templates" {
			var out []int
			for _, item := range m.Content[i+1].Content {
				out = append(out, item.Line)
			}
			return out
		}
	}
	return nil
}

func (t *Template) normalize() error {
	if err := api.ValidateID("template name", t.Name); err != nil {
		return err
	}
	if t.Image == "" {
		return fmt.Errorf("image is required")
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
	if t.CollectMaxMiB < 0 {
		return fmt.Errorf("collectMaxMiB must not be negative")
	}
	if t.CollectMaxMiB == 0 {
		t.CollectMaxMiB = defaultCollectMaxMiB
	}
	if t.MemoryMiB <= 0 {
		return fmt.Errorf("memoryMiB must be positive")
	}
	if t.CPUs <= 0 {
		return fmt.Errorf("cpus must be positive")
	}
	if t.PIDs <= 0 {
		return fmt.Errorf("pids must be positive")
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
