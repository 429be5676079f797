package policy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
)

// quotaPolicy has one template of 0.5 CPU and 128 MiB per student, and
// cs101's limits small enough to hit each one on its own.
func quotaPolicy(t *testing.T) *Policy {
	t.Helper()
	p, err := Parse([]byte(`templates:
  - {name: small, image: x, port: 80, memoryMiB: 128, cpus: 0.5, pids: 8}
  - {name: big, image: x, port: 80, memoryMiB: 1024, cpus: 0.1, pids: 8}
defaults:
  maxStudentsPerClass: 10
  maxClassesUp: 3
  maxContainers: 20
  maxCPUs: 8
  maxMemoryMiB: 4096
`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func roster(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s%d", i)
	}
	return s
}

func TestAdmit(t *testing.T) {
	p := quotaPolicy(t)
	tests := []struct {
		desc      string
		template  string
		students  int
		others    Usage
		limit     string // "" when admitted
		requested float64
		allowed   float64
		message   string
	}{
		{desc: "first class", template: "small", students: 10},
		{desc: "exactly at every limit", template: "small", students: 4, others: Usage{ClassesUp: 2, Containers: 16, CPUs: 6, MemoryMiB: 3584}},
		{desc: "roster over the cap", template: "small", students: 11, limit: LimitStudentsPerClass, requested: 11, allowed: 10,
			message: "subject cs101: 11 students in one class, at most 10 allowed (maxStudentsPerClass)"},
		{desc: "one class too many", template: "small", students: 1, others: Usage{ClassesUp: 3, Containers: 3, CPUs: 1.5, MemoryMiB: 384},
			limit: LimitClassesUp, requested: 4, allowed: 3, message: "subject cs101: 4 classes Up, at most 3 allowed (maxClassesUp)"},
		{desc: "containers", template: "small", students: 5, others: Usage{ClassesUp: 1, Containers: 16},
			limit: LimitContainers, requested: 21, allowed: 20, message: "subject cs101: 21 containers Up, at most 20 allowed (maxContainers)"},
		{desc: "cpus", template: "small", students: 5, others: Usage{ClassesUp: 1, Containers: 5, CPUs: 6},
			limit: LimitCPUs, requested: 8.5, allowed: 8, message: "subject cs101: 8.5 CPUs Up, at most 8 allowed (maxCPUs)"},
		{desc: "memory", template: "big", students: 5, others: Usage{ClassesUp: 1, Containers: 1, MemoryMiB: 1024},
			limit: LimitMemoryMiB, requested: 6144, allowed: 4096, message: "subject cs101: 6144 MiB of memory Up, at most 4096 allowed (maxMemoryMiB)"},
		{desc: "float noise is not over", template: "big", students: 3, others: Usage{ClassesUp: 1, Containers: 1, CPUs: 7.7}},
		{desc: "the first limit broken is named", template: "big", students: 11, others: Usage{ClassesUp: 3, Containers: 20, CPUs: 8, MemoryMiB: 4096},
			limit: LimitStudentsPerClass, requested: 11, allowed: 10},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			spec := api.ClassSpec{Subject: "cs101", Template: tc.template, Students: roster(tc.students)}
			err := p.Admit(spec, tc.others)
			if tc.limit == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var qe *QuotaError
			if !errors.As(err, &qe) {
				t.Fatalf("error = %v, want a *QuotaError", err)
			}
			if qe.Subject != "cs101" || qe.Limit != tc.limit || qe.Requested != tc.requested || qe.Allowed != tc.allowed {
				t.Errorf("error = %+v, want %s %v/%v", qe, tc.limit, tc.requested, tc.allowed)
			}
			if tc.message != "" && err.Error() != tc.message {
				t.Errorf("message %q, want %q", err, tc.message)
			}
			if errors.Is(err, ErrUnknownTemplate) {
				t.Error("a quota error must not look like an unknown template")
			}
		})
	}
}

func TestAdmitUsesTheSubjectsQuota(t *testing.T) {
	p, err := Parse([]byte(tmpl + "subjects:\n  cs101: {maxClassesUp: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	spec := api.ClassSpec{Subject: "cs101", Template: "a", Students: []string{"al"}}
	if err := p.Admit(spec, Usage{ClassesUp: 1}); err == nil {
		t.Error("cs101 may have one class Up")
	}
	spec.Subject = "bio"
	if err := p.Admit(spec, Usage{ClassesUp: 1}); err != nil {
		t.Errorf("bio has the built-in defaults: %v", err)
	}
}

func TestAdmitUnknownTemplate(t *testing.T) {
	p := quotaPolicy(t)
	err := p.Admit(api.ClassSpec{Subject: "cs101", Template: "bitcoin-miner", Students: []string{"al"}}, Usage{})
	var ute *UnknownTemplateError
	if !errors.Is(err, ErrUnknownTemplate) || !errors.As(err, &ute) || ute.Template != "bitcoin-miner" {
		t.Fatalf("error = %v", err)
	}
	if want := `template "bitcoin-miner" is not in the allowlist (big, small)`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

func TestUsageOf(t *testing.T) {
	p := quotaPolicy(t)
	class := func(id, subject, template string, n int, phase api.Phase) api.Class {
		return api.Class{ID: id, DesiredPhase: phase, Spec: api.ClassSpec{Subject: subject, Template: template, Students: roster(n)}}
	}
	classes := []api.Class{
		class("a", "cs101", "small", 3, api.PhaseUp),
		class("b", "cs101", "big", 2, api.PhaseUp),
		class("c", "cs101", "small", 7, api.PhaseDown),  // going or gone Down: not counted
		class("d", "bio", "small", 5, api.PhaseUp),      // another subject
		class("e", "cs101", "retired", 4, api.PhaseUp),  // template gone: containers only
		class("self", "cs101", "small", 9, api.PhaseUp), // the class being admitted
	}
	tests := []struct {
		desc, subject, except string
		want                  Usage
	}{
		{"cs101 but itself", "cs101", "self", Usage{ClassesUp: 3, Containers: 9, CPUs: 1.7, MemoryMiB: 3*128 + 2*1024}},
		{"cs101 all", "cs101", "", Usage{ClassesUp: 4, Containers: 18, CPUs: 6.2, MemoryMiB: 12*128 + 2*1024}},
		{"bio", "bio", "self", Usage{ClassesUp: 1, Containers: 5, CPUs: 2.5, MemoryMiB: 640}},
		{"nobody", "art", "", Usage{}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := p.UsageOf(classes, tc.subject, tc.except)
			if got.ClassesUp != tc.want.ClassesUp || got.Containers != tc.want.Containers || got.MemoryMiB != tc.want.MemoryMiB ||
				formatNum(got.CPUs) != formatNum(tc.want.CPUs) {
				t.Errorf("UsageOf = %+v, want %+v", got, tc.want)
			}
		})
	}
	// UsageWhere lets a controller count what it chooses.
	onlyA := p.UsageWhere(classes, "cs101", "", func(c *api.Class) bool { return c.ID == "a" })
	if onlyA != (Usage{ClassesUp: 1, Containers: 3, CPUs: 1.5, MemoryMiB: 384}) {
		t.Errorf("UsageWhere = %+v", onlyA)
	}
}
