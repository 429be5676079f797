package reconcile

import (
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

func TestTemplateChangeIsReportedNotApplied(t *testing.T) {
	for _, hashes := range []*specHashes{nil, {}} {
		templateChangeIsReportedNotApplied(t, hashes)
	}
}

func templateChangeIsReportedNotApplied(t *testing.T, hashes *specHashes) {
	tmpl, _ := policy.Default().Template("sandbox")
	opts := Options{Domain: "lab.test"}
	c := class(api.PhaseUp, "alice", "bob")
	current := ContainerSpec(c.ID, "alice", tmpl, opts.Domain, opts.ForwardAuth).Config.Labels[api.LabelConfigHash]
	obs := Observed{Network: classNet, Containers: containers("running", "alice", "bob")}
	alice := obs.Containers["alice"]
	alice.ConfigHash = current
	obs.Containers["alice"] = alice
	bob := obs.Containers["bob"]
	bob.ConfigHash = "made-by-an-older-template"
	obs.Containers["bob"] = bob

	if p := PlanFor(Input{Class: c, Template: tmpl, Observed: obs}); len(p) != 0 {
		t.Fatalf("a changed template must not replace running work; plan:\n%s", p)
	}
	st := buildStatus(&c, tmpl, obs, nil, opts, hashes, time.Unix(0, 0))
	cond := api.FindCondition(st.Conditions, api.ConditionTemplateCurrent)
	if cond == nil || cond.Status != "False" || cond.Reason != "TemplateChanged" {
		t.Fatalf("TemplateCurrent = %+v", cond)
	}
	if st.Phase != api.PhaseUp {
		t.Errorf("phase %s: an old template is still Up", st.Phase)
	}

	bob.ConfigHash = ContainerSpec(c.ID, "bob", tmpl, opts.Domain, opts.ForwardAuth).Config.Labels[api.LabelConfigHash]
	obs.Containers["bob"] = bob
	st = buildStatus(&c, tmpl, obs, nil, opts, hashes, time.Unix(0, 0))
	if cond := api.FindCondition(st.Conditions, api.ConditionTemplateCurrent); cond == nil || cond.Status != "True" {
		t.Errorf("TemplateCurrent with every sandbox current = %+v", cond)
	}

	// The same sandboxes against a template changed since (a policy loaded
	// anew): the remembered hashes are not the new template's.
	changed := *tmpl
	changed.MemoryMiB++
	st = buildStatus(&c, &changed, obs, nil, opts, hashes, time.Unix(0, 0))
	if cond := api.FindCondition(st.Conditions, api.ConditionTemplateCurrent); cond == nil || cond.Status != "False" {
		t.Errorf("TemplateCurrent after the template changed = %+v", cond)
	}
}
