package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// buildStatus derives the status from the desired state, what Docker holds
// after the pass, and how the pass ended. It is pure, like the planner.
func buildStatus(c *api.Class, tmpl *policy.Template, obs Observed, passErr error, opts Options, hashes *specHashes, now time.Time) api.ClassStatus {
	prev := c.Status
	st := api.ClassStatus{
		ObservedGeneration: c.Generation,
		Conditions:         append([]api.Condition(nil), prev.Conditions...),
		Run:                prev.Run,
		Autosave:           prev.Autosave,
		UpSeconds:          prev.UpSeconds,
		UpAt:               upAt(c),
		HandIns:            prev.HandIns,
		Late:               prev.Late,
		Restarted:          prev.Restarted,
		Restored:           prev.Restored,
		LeftBehind:         prev.LeftBehind,
	}
	if c.DesiredPhase != api.PhaseUp {
		st.Restored = withoutPending(st.Restored, obs)
	}
	if obs.Network != nil {
		st.Network = obs.Network.Name
	}
	prevArtifacts := map[string]*api.ArtifactsRef{}
	for _, s := range prev.Students {
		prevArtifacts[s.ID] = s.Artifacts
	}
	student := func(id string) api.StudentStatus {
		s := api.StudentStatus{ID: id, Container: api.ContainerName(c.ID, id), State: "missing", Artifacts: prevArtifacts[id]}
		if oc, ok := obs.Containers[id]; ok {
			s.State = oc.State
			switch {
			case oc.Unready != "":
				s.State, s.Message = api.StateUnready, oc.Unready
			case oc.Waiting:
				s.State = api.StateStarting
			}
		}
		return s
	}
	total := len(c.Spec.Students)
	running := 0
	ready := api.Condition{Type: api.ConditionReady, Status: "False", LastTransitionTime: now}

	switch c.DesiredPhase {
	case api.PhaseUp:
		onRoster := map[string]bool{}
		for _, id := range c.Spec.Students {
			onRoster[id] = true
			s := student(id)
			s.Endpoint = api.Endpoint(c.ID, id, opts.Domain)
			if s.State == "running" {
				running++
			}
			st.Students = append(st.Students, s)
		}
		// Students taken off the roster stay listed while their container
		// or their checkpoint in an unfinished run does.
		runActive := st.Run != nil && st.Run.CompletedAt == nil
		for _, prevSt := range prev.Students {
			id := prevSt.ID
			_, present := obs.Containers[id]
			checkpointed := runActive && prevSt.Artifacts != nil && prevSt.Artifacts.RunID == st.Run.ID
			if !onRoster[id] && (present || checkpointed) {
				st.Students = append(st.Students, downStudent(student(id)))
			}
		}
		st.ExpiresAt = c.ExpiresAt()
		switch {
		case tmpl == nil:
			st.Phase = api.PhaseFailed
			ready.Reason, ready.Message = "UnknownTemplate", fmt.Sprintf("template %q is not in the policy", c.Spec.Template)
		case obs.Network != nil && running == total:
			st.Phase = api.PhaseUp
			if st.UpAt == nil && c.UpSince != nil {
				st.UpAt = &now
			}
			ready.Status, ready.Reason, ready.Message = "True", "AllStudentsRunning", describe(running, total)
		case errors.As(passErr, new(*policy.QuotaError)):
			st.Phase = api.PhaseProvisioning
			if len(obs.Containers) == 0 {
				st.Phase = api.PhasePending
			}
			ready.Reason, ready.Message = "QuotaExceeded", passErr.Error()
		default:
			st.Phase = api.PhaseProvisioning
			ready.Reason, ready.Message = "StudentsStarting", describe(running, total)
			if unready := unreadyStudents(st.Students); unready != "" {
				ready.Reason = reasonNotReady
				ready.Message += "; " + unready
			}
			if paused := pausedRestarts(Input{Class: *c, Template: tmpl, Observed: obs, Now: now}); len(paused) > 0 {
				ready.Reason = reasonRestarting
				ready.Message += "; " + describePaused(paused)
			}
		}
		st.Conditions = api.SetCondition(st.Conditions, routing(obs, tmpl, opts, now))
		st.Conditions = removeCondition(st.Conditions, api.ConditionNetworkLeaked)
		if tmpl != nil {
			st.Conditions = api.SetCondition(st.Conditions, templateCurrent(c, tmpl, obs, opts, hashes, now))
			if obs.Workspaces != nil {
				// Until the first measurement, the last report stands.
				st.Conditions = api.SetCondition(st.Conditions, workspaceFull(c, tmpl, obs, now))
			}
		}
		for i := range st.Students {
			if b, ok := obs.Workspaces[st.Students[i].ID]; ok {
				st.Students[i].WorkspaceBytes = &b
			}
		}
	default:
		seen := map[string]bool{}
		in := Input{Class: *c, Observed: obs, Now: now}
		kept := keptPastDown(in)
		for _, id := range c.Spec.Students {
			seen[id] = true
			s := downStudent(student(id))
			if slices.Contains(kept, id) {
				// Signed in to past the Down: where, for its link.
				s.Endpoint = api.Endpoint(c.ID, id, opts.Domain)
			}
			st.Students = append(st.Students, s)
		}
		for id := range obs.Containers {
			if !seen[id] {
				st.Students = append(st.Students, downStudent(student(id)))
			}
		}
		runActive := st.Run != nil && st.Run.CompletedAt == nil
		late := lateOpen(in)
		// Late hand-ins' sandboxes are not the class's: it is Down once
		// everything else was collected and removed.
		onlyLate := len(late) > 0 && len(obs.Stranded()) == 0
		for id := range obs.Containers {
			onlyLate = onlyLate && slices.Contains(late, id)
		}
		if (obs.Empty() || obs.OnlyLeakedNetwork() || onlyLate) && !runActive {
			st.Phase = api.PhaseDown
			ready.Reason, ready.Message = "ClassDown", ""
			if c.DownReason == api.ReasonTTLExpired {
				ready.Reason, ready.Message = api.ReasonTTLExpired, "the class's ttlSeconds ran out; it was collected and taken down"
			}
			if onlyLate {
				ready.Reason, ready.Message = reasonLate, lateStudents(in)
			}
		} else {
			st.Phase = api.PhaseCollecting
			left := len(obs.Containers) + len(obs.Stranded())
			ready.Reason, ready.Message = "Collecting", fmt.Sprintf("%d containers left to collect and remove", left)
			if c.DownReason == api.ReasonTTLExpired {
				ready.Reason = api.ReasonTTLExpired
			}
			if late := lateStudents(in); late != "" {
				ready.Reason, ready.Message = reasonLate, late
			}
			if extra := extendedStudents(in); extra != "" {
				ready.Reason, ready.Message = reasonExtended, extra+"; the others are collected"
			}
		}
		// Routing and template versions mean nothing for a class that is down.
		st.Conditions = removeCondition(st.Conditions, api.ConditionRouting)
		st.Conditions = removeCondition(st.Conditions, api.ConditionTemplateCurrent)
		st.Conditions = removeCondition(st.Conditions, api.ConditionWorkspaceFull)
		if obs.OnlyLeakedNetwork() {
			st.Conditions = api.SetCondition(st.Conditions, api.Condition{Type: api.ConditionNetworkLeaked, Status: "True",
				Reason: "ActiveEndpoints", LastTransitionTime: now,
				Message: fmt.Sprintf("the Docker daemon refuses to remove network %s (\"has active endpoints\") although no container is on it; "+
					"a restart of the Docker daemon clears it. The class is Down and can be deleted; Homeroom keeps retrying the removal "+
					"and does not give its subnet to another class while the network exists", obs.Network.Name)})
		} else {
			st.Conditions = removeCondition(st.Conditions, api.ConditionNetworkLeaked)
		}
	}
	st.Conditions = api.SetCondition(st.Conditions, ready)

	synced := api.Condition{Type: api.ConditionSynced, Status: "True", Reason: "Converged", LastTransitionTime: now}
	if passErr != nil {
		synced.Status, synced.Reason, synced.Message = "False", reason(passErr), passErr.Error()
	}
	st.Conditions = api.SetCondition(st.Conditions, synced)
	return st
}

// workspaceFull reports the students whose work volumes passed the
// template's cap at the last measurement.
func workspaceFull(c *api.Class, tmpl *policy.Template, obs Observed, now time.Time) api.Condition {
	cond := api.Condition{Type: api.ConditionWorkspaceFull, Status: "False", Reason: "WithinLimit", LastTransitionTime: now,
		Message: fmt.Sprintf("every workspace is within %d MiB", tmpl.WorkspaceBytes()>>20)}
	var over []string
	for _, s := range sortedKeys(FullWorkspaces(Input{Class: *c, Template: tmpl, Observed: obs})) {
		over = append(over, fmt.Sprintf("%s (%d MiB)", s, obs.Workspaces[s]>>20))
	}
	if len(over) > 0 {
		cond.Status, cond.Reason = "True", "WorkspaceFull"
		cond.Message = fmt.Sprintf("over the %d MiB workspace cap, autosaved and stopped until the cap is raised or the class goes Down: %s",
			tmpl.WorkspaceBytes()>>20, strings.Join(over, ", "))
	}
	return cond
}

// templateCurrent tells whether running sandboxes were made from the
// template as it is now. A changed template never replaces running work: it
// applies to the containers of the next Up.
func templateCurrent(c *api.Class, tmpl *policy.Template, obs Observed, opts Options, hashes *specHashes, now time.Time) api.Condition {
	cond := api.Condition{Type: api.ConditionTemplateCurrent, Status: "True", Reason: "UpToDate", LastTransitionTime: now}
	stale := 0
	for _, s := range c.Spec.Students {
		oc, ok := obs.Containers[s]
		if ok && oc.ConfigHash != hashes.of(c.ID, s, tmpl, opts.Domain, opts.ForwardAuth) {
			stale++
		}
	}
	if stale > 0 {
		cond.Status, cond.Reason = "False", "TemplateChanged"
		cond.Message = fmt.Sprintf("%d of %d sandboxes were made from an older version of template %q; running work is kept, and the change applies at the next Up",
			stale, len(obs.Containers), tmpl.Name)
	}
	return cond
}

func downStudent(s api.StudentStatus) api.StudentStatus {
	if s.State == "missing" {
		s.State = "removed"
	}
	return s
}

func routing(obs Observed, tmpl *policy.Template, opts Options, now time.Time) api.Condition {
	c := api.Condition{Type: api.ConditionRouting, Status: "False", LastTransitionTime: now}
	switch {
	case obs.Traefik == nil:
		c.Reason = "TraefikNotFound"
		c.Message = fmt.Sprintf("container %q does not exist: sandboxes run but endpoints do not answer", opts.TraefikContainer)
	case obs.Traefik.HostNetwork && !obs.Traefik.Running:
		c.Reason = "TraefikNotRunning"
		c.Message = fmt.Sprintf("container %q is not running", opts.TraefikContainer)
	case obs.Traefik.HostNetwork:
		c.Status, c.Reason = "True", "TraefikHostNetwork"
	case tmpl != nil && !tmpl.Collaboration:
		// Attached or not, it cannot reach sandboxes that accept no traffic
		// from other containers.
		c.Reason = "TraefikNotHostNetwork"
		c.Message = fmt.Sprintf("container %q must share the host's network (network_mode: host) to reach sandboxes of template %q, which do not accept traffic from other containers", opts.TraefikContainer, tmpl.Name)
	case !obs.Traefik.Attached:
		c.Reason = "TraefikNotAttached"
		c.Message = fmt.Sprintf("container %q is not attached to the class network", opts.TraefikContainer)
	case !obs.Traefik.Running:
		c.Reason = "TraefikNotRunning"
		c.Message = fmt.Sprintf("container %q is attached but not running", opts.TraefikContainer)
	default:
		c.Status, c.Reason = "True", "TraefikAttached"
	}
	return c
}

func reason(err error) string {
	if errors.As(err, new(*policy.QuotaError)) {
		return "QuotaExceeded"
	}
	if se := asStepError(err); se != nil {
		switch se.Action.Kind {
		case Collect:
			return "CollectFailed"
		case BeginRun, CompleteRun:
			return "StoreError"
		}
		return "DockerError"
	}
	return "ReconcileError"
}

func asStepError(err error) *stepError {
	var se *stepError
	if errors.As(err, &se) {
		return se
	}
	return nil
}

func removeCondition(cs []api.Condition, t string) []api.Condition {
	out := cs[:0]
	for _, c := range cs {
		if c.Type != t {
			out = append(out, c)
		}
	}
	return out
}

func cloneStatus(s api.ClassStatus) api.ClassStatus {
	var out api.ClassStatus
	b, _ := json.Marshal(s)
	json.Unmarshal(b, &out)
	return out
}

// statusEqual ignores transition times that buildStatus stamps afresh:
// SetCondition keeps the old time whenever the status did not change.
func statusEqual(a, b api.ClassStatus) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(s api.ClassStatus) api.ClassStatus {
	s = cloneStatus(s)
	if len(s.Conditions) == 0 {
		s.Conditions = nil
	}
	if len(s.Students) == 0 {
		s.Students = nil
	}
	return s
}

// describePaused tells a teacher which sandboxes stopped and when each
// starts again, e.g. "bob's sandbox stopped (exit code 1) and starts again
// at 09:01:05 UTC".
func describePaused(paused []ObservedContainer) string {
	parts := make([]string, len(paused))
	for i, c := range paused {
		// Rounded up, so that the time said is never before the start.
		due := c.RestartDue()
		if whole := due.Truncate(time.Second); whole.Before(due) {
			due = whole.Add(time.Second)
		}
		parts[i] = fmt.Sprintf("%s's sandbox stopped (exit code %d) and starts again at %s",
			c.Student, c.ExitCode, due.UTC().Format("15:04:05 MST"))
	}
	return strings.Join(parts, "; ")
}

// reasonNotReady: a sandbox runs but has not answered its template's
// readiness check within the check's timeout.
const reasonNotReady = "StudentsNotReady"

// unreadyStudents names the students whose sandboxes are unready, or "".
func unreadyStudents(students []api.StudentStatus) string {
	var names []string
	for _, s := range students {
		if s.State == api.StateUnready {
			names = append(names, s.ID)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return fmt.Sprintf("not answering their readiness check: %s (their status says why)", strings.Join(names, ", "))
}

// reasonExtended: a Down class waits for students with extra time;
// reasonLate: for late hand-ins.
const (
	reasonExtended = "StudentsExtended"
	reasonLate     = "LateHandIns"
)

// extendedStudents names the students of a Down class whose extra time
// runs, with its end: "extra time: alice until 11:30:00 UTC".
func extendedStudents(in Input) string {
	return untilList("extra time", extendedKept(in), func(d api.StudentDesire) *time.Time { return d.Until }, in)
}

// lateStudents likewise names the late hand-ins that run.
func lateStudents(in Input) string {
	return untilList("late hand-in", lateOpen(in), func(d api.StudentDesire) *time.Time { return d.LateUntil }, in)
}

func untilList(what string, students []string, until func(api.StudentDesire) *time.Time, in Input) string {
	var out []string
	for _, s := range students {
		out = append(out, s+" until "+until(in.Class.PerStudent[s]).UTC().Format("15:04:05 UTC"))
	}
	if len(out) == 0 {
		return ""
	}
	return what + ": " + strings.Join(out, ", ")
}

// withoutPending drops the restores still to do whose sandbox is gone once
// the class is going Down: the work is in the run it would have come from,
// and a later Up starts every student from the template.
func withoutPending(rs map[string]api.Restored, obs Observed) map[string]api.Restored {
	var out map[string]api.Restored
	for s, r := range rs {
		if _, ok := obs.Containers[s]; r.Pending && !ok {
			if out == nil {
				out = maps.Clone(rs)
			}
			delete(out, s)
		}
	}
	if out == nil {
		return rs
	}
	return out
}
