package policy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/homeroom/homeroom/pkg/api"
	"go.yaml.in/yaml/v3"
)

// Quota bounds what one subject may have Up at once. In a subject's entry a
// limit of 0 (or one left out) inherits the policy's defaults; in the
// defaults it inherits the built-in policy's. There is no "unlimited": set a
// large number.
type Quota struct {
	// MaxStudentsPerClass caps one roster (never above api.MaxStudents,
	// which every spec obeys whatever the policy).
	MaxStudentsPerClass int `yaml:"maxStudentsPerClass,omitempty" json:"maxStudentsPerClass"`
	// MaxClassesUp caps the subject's classes whose desired phase is Up.
	MaxClassesUp int `yaml:"maxClassesUp,omitempty" json:"maxClassesUp"`
	// MaxContainers caps the student containers of those classes together.
	MaxContainers int `yaml:"maxContainers,omitempty" json:"maxContainers"`
	// MaxCPUs and MaxMemoryMiB cap the sum of the templates' limits over
	// those containers: what the subject may take of the machine.
	MaxCPUs      float64 `yaml:"maxCPUs,omitempty" json:"maxCPUs"`
	MaxMemoryMiB int64   `yaml:"maxMemoryMiB,omitempty" json:"maxMemoryMiB"`
}

// The names of the limits, as in the policy file; QuotaError.Limit is one.
const (
	LimitStudentsPerClass = "maxStudentsPerClass"
	LimitClassesUp        = "maxClassesUp"
	LimitContainers       = "maxContainers"
	LimitCPUs             = "maxCPUs"
	LimitMemoryMiB        = "maxMemoryMiB"
)

// Limits lists every limit name, in the order Admit checks them.
func Limits() []string {
	return []string{LimitStudentsPerClass, LimitClassesUp, LimitContainers, LimitCPUs, LimitMemoryMiB}
}

type limitValue struct {
	name  string
	value float64
}

// values lists each limit by name, in the order of Limits.
func (q Quota) values() []limitValue {
	return []limitValue{
		{LimitStudentsPerClass, float64(q.MaxStudentsPerClass)},
		{LimitClassesUp, float64(q.MaxClassesUp)},
		{LimitContainers, float64(q.MaxContainers)},
		{LimitCPUs, q.MaxCPUs},
		{LimitMemoryMiB, float64(q.MaxMemoryMiB)},
	}
}

// inherit fills every limit of q that is 0 from base.
func (q Quota) inherit(base Quota) Quota {
	if q.MaxStudentsPerClass == 0 {
		q.MaxStudentsPerClass = base.MaxStudentsPerClass
	}
	if q.MaxClassesUp == 0 {
		q.MaxClassesUp = base.MaxClassesUp
	}
	if q.MaxContainers == 0 {
		q.MaxContainers = base.MaxContainers
	}
	if q.MaxCPUs == 0 {
		q.MaxCPUs = base.MaxCPUs
	}
	if q.MaxMemoryMiB == 0 {
		q.MaxMemoryMiB = base.MaxMemoryMiB
	}
	return q
}

// check rejects negative and non-finite limits, naming the line of the key.
func (q Quota) check(node *yaml.Node, where string) error {
	for _, l := range q.values() {
		if l.value < 0 || math.IsNaN(l.value) || math.IsInf(l.value, 0) {
			return fmt.Errorf("line %d: %s: %s must be a number not below 0 (0 inherits), got %v",
				lineOf(node, l.name), where, l.name, l.value)
		}
	}
	return nil
}

// resolveQuotas validates the defaults and the subjects and fills the
// defaults' missing limits from floor. With a zero floor (the built-in
// policy itself) every limit must be given.
func (p *Policy) resolveQuotas(top *yaml.Node, floor Quota) error {
	_, defNode := lookup(top, "defaults")
	if err := p.Defaults.check(defNode, "defaults"); err != nil {
		return err
	}
	p.Defaults = p.Defaults.inherit(floor)
	for _, l := range p.Defaults.values() {
		if l.value == 0 {
			return fmt.Errorf("line %d: defaults: %s must be set", lineOf(defNode, l.name), l.name)
		}
	}
	subjKey, subjNode := lookup(top, "subjects")
	for _, name := range sortedKeys(p.Subjects) {
		k, v := lookup(subjNode, name)
		line := 0
		if k != nil {
			line = k.Line
		} else if subjKey != nil {
			line = subjKey.Line
		}
		if err := api.ValidateID("subject", name); err != nil {
			return fmt.Errorf("line %d: subjects: %w", line, err)
		}
		q := p.Subjects[name]
		if v == nil || v.Kind != yaml.MappingNode {
			v = k
		}
		if err := q.check(v, fmt.Sprintf("subject %q", name)); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Quota returns the limits of subject: its own entry over the defaults.
func (p *Policy) Quota(subject string) Quota {
	return p.Subjects[subject].inherit(p.Defaults)
}

// Usage is what a subject has Up (or coming Up), or what one class takes.
type Usage struct {
	ClassesUp  int     `json:"classesUp"`
	Containers int     `json:"containers"`
	CPUs       float64 `json:"cpus"`
	MemoryMiB  int64   `json:"memoryMiB"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{ClassesUp: u.ClassesUp + v.ClassesUp, Containers: u.Containers + v.Containers,
		CPUs: u.CPUs + v.CPUs, MemoryMiB: u.MemoryMiB + v.MemoryMiB}
}

// Footprint is what one class of spec takes when Up: one class, a container
// per student, and the template's CPU and memory limits per container. A
// template gone from the policy counts its containers but no CPU or memory,
// since nothing says what they were given.
func (p *Policy) Footprint(spec api.ClassSpec) Usage {
	n := len(spec.Students)
	u := Usage{ClassesUp: 1, Containers: n}
	if t, ok := p.Template(spec.Template); ok {
		u.CPUs = float64(n) * t.CPUs
		u.MemoryMiB = int64(n) * t.MemoryMiB
	}
	return u
}

// UsageOf sums the footprints of subject's classes whose desired phase is Up,
// leaving out exceptClassID (the class being admitted). A class going Down
// stops counting at once: its containers are stopped before they are
// collected.
func (p *Policy) UsageOf(classes []api.Class, subject, exceptClassID string) Usage {
	return p.UsageWhere(classes, subject, exceptClassID, func(c *api.Class) bool { return c.DesiredPhase == api.PhaseUp })
}

// UsageWhere is UsageOf with the caller's choice of which classes count, for
// a controller that counts only the classes it has itself admitted.
func (p *Policy) UsageWhere(classes []api.Class, subject, exceptClassID string, counts func(*api.Class) bool) Usage {
	var u Usage
	for i := range classes {
		c := &classes[i]
		if c.ID == exceptClassID || c.Spec.Subject != subject || !counts(c) {
			continue
		}
		u = u.Add(p.Footprint(c.Spec))
	}
	return u
}

// ErrUnknownTemplate is what Admit's error matches (errors.Is) when the spec
// names a template outside the allowlist.
var ErrUnknownTemplate = errors.New("unknown template")

// UnknownTemplateError names the template and the allowlist.
type UnknownTemplateError struct {
	Template string
	Allowed  []string
}

func (e *UnknownTemplateError) Error() string {
	return fmt.Sprintf("template %q is not in the allowlist (%s)", e.Template, strings.Join(e.Allowed, ", "))
}

// Is makes errors.Is(err, ErrUnknownTemplate) hold.
func (e *UnknownTemplateError) Is(target error) bool { return target == ErrUnknownTemplate }

// QuotaError says which limit a class would break: Requested is the total
// with the class admitted (its roster, for LimitStudentsPerClass), Allowed
// the subject's limit.
type QuotaError struct {
	Subject   string
	Limit     string
	Requested float64
	Allowed   float64
}

func (e *QuotaError) Error() string {
	var what string
	switch e.Limit {
	case LimitStudentsPerClass:
		what = "students in one class"
	case LimitClassesUp:
		what = "classes Up"
	case LimitContainers:
		what = "containers Up"
	case LimitCPUs:
		what = "CPUs Up"
	case LimitMemoryMiB:
		what = "MiB of memory Up"
	}
	return fmt.Sprintf("subject %s: %s %s, at most %s allowed (%s)",
		e.Subject, formatNum(e.Requested), what, formatNum(e.Allowed), e.Limit)
}

// formatNum prints integers without a fraction and sums of CPUs without
// float noise (0.30000000000000004 → 0.3).
func formatNum(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// cpuSlack absorbs float error in sums of CPU limits (0.1 × 3 > 0.3).
const cpuSlack = 1e-6

// Admit reports whether a class of spec may be Up (come Up, or stay Up) under
// this policy, given what the rest of its subject has Up (others, which must
// leave the class itself out). It returns an *UnknownTemplateError or the
// *QuotaError of the first limit broken, in the order of Limits. Admit is
// pure: the apiserver calls it before writing, the controller before
// creating anything.
func (p *Policy) Admit(spec api.ClassSpec, others Usage) error {
	if _, ok := p.Template(spec.Template); !ok {
		return &UnknownTemplateError{Template: spec.Template, Allowed: p.TemplateNames()}
	}
	q := p.Quota(spec.Subject)
	total := others.Add(p.Footprint(spec))
	over := func(limit string, requested, allowed float64) error {
		return &QuotaError{Subject: spec.Subject, Limit: limit, Requested: requested, Allowed: allowed}
	}
	switch {
	case len(spec.Students) > q.MaxStudentsPerClass:
		return over(LimitStudentsPerClass, float64(len(spec.Students)), float64(q.MaxStudentsPerClass))
	case total.ClassesUp > q.MaxClassesUp:
		return over(LimitClassesUp, float64(total.ClassesUp), float64(q.MaxClassesUp))
	case total.Containers > q.MaxContainers:
		return over(LimitContainers, float64(total.Containers), float64(q.MaxContainers))
	case total.CPUs > q.MaxCPUs+cpuSlack:
		return over(LimitCPUs, total.CPUs, q.MaxCPUs)
	case total.MemoryMiB > q.MaxMemoryMiB:
		return over(LimitMemoryMiB, float64(total.MemoryMiB), float64(q.MaxMemoryMiB))
	}
	return nil
}
