package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// Kind names one step the executor can take.
type Kind string

const (
	CreateNetwork   Kind = "create-network"
	ConnectTraefik  Kind = "connect-traefik"
	CreateContainer Kind = "create-container"
	StartContainer  Kind = "start-container"
	BeginRun        Kind = "begin-run"
	StopContainer   Kind = "stop-container"
	Collect         Kind = "collect"
	RemoveContainer Kind = "remove-container"
	// CollectVolumes collects the work volumes of a student whose sandbox
	// is gone, through a container that mounts them and never starts.
	CollectVolumes Kind = "collect-volumes"
	// RemoveVolumes removes a collected student's work volumes that
	// outlived their sandbox.
	RemoveVolumes Kind = "remove-volumes"
	// ReplaceContainer removes a sandbox the daemon refuses to start and
	// makes it again, keeping its work volumes.
	ReplaceContainer Kind = "replace-container"
	// Autosave collects every running sandbox of an Up class as a run of
	// kind autosave, stopping nothing.
	Autosave Kind = "autosave"
	// HandIn collects one running sandbox as a run of kind student, at a
	// teacher's request, stopping nothing.
	HandIn Kind = "hand-in"
	// CollectLeftBehind collects the work volumes a student's sandbox left
	// at Target (a swarm node that was lost and is back) into a run of
	// their own; RemoveLeftBehind then removes them there.
	CollectLeftBehind Kind = "collect-left-behind"
	RemoveLeftBehind  Kind = "remove-left-behind"
	// RestoreWork copies a student's last collected work, checked against
	// its manifest, into a sandbox made for a late hand-in, before its
	// first start.
	RestoreWork Kind = "restore-work"
	// LateHandIn collects a late hand-in's sandbox as a run of kind late.
	LateHandIn        Kind = "late-hand-in"
	DisconnectTraefik Kind = "disconnect-traefik"
	RemoveNetwork     Kind = "remove-network"
	CompleteRun       Kind = "complete-run"
)

// Action is one step. Student is empty for class-level steps.
type Action struct {
	Kind    Kind
	Student string
	// Target is the Docker object the step acts on, where one exists.
	Target string
}

func (a Action) String() string {
	s := string(a.Kind)
	if a.Student != "" {
		s += " " + a.Student
	}
	if a.Target != "" {
		s += " (" + a.Target + ")"
	}
	return s
}

// Plan is the ordered list of steps that moves Docker toward the desired
// state. Consecutive student steps form a stage in which each student's steps
// run in order and different students run concurrently.
type Plan []Action

func (p Plan) String() string {
	var b strings.Builder
	for _, a := range p {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// count is how many steps of kind k the plan has.
func (p Plan) count(k Kind) int {
	n := 0
	for _, a := range p {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// creates reports whether the plan makes new sandboxes, which needs quota.
func (p Plan) creates() bool {
	for _, a := range p {
		if a.Kind == CreateContainer {
			return true
		}
	}
	return false
}

// withoutNewSandboxes drops what would bring up sandboxes that do not exist
// yet (and the class network, if nothing runs on it), keeping the rest: a
// class over quota keeps its running students and still collects leavers.
func (p Plan) withoutNewSandboxes(obs Observed) Plan {
	var out Plan
	for _, a := range p {
		_, exists := obs.Containers[a.Student]
		switch {
		case a.Kind == CreateContainer, (a.Kind == StartContainer || a.Kind == RestoreWork) && !exists:
		case (a.Kind == CreateNetwork || a.Kind == ConnectTraefik) && len(obs.Containers) == 0:
		default:
			out = append(out, a)
		}
	}
	return out
}

// Input is everything the planner decides from.
type Input struct {
	Class api.Class
	// Template is the class's template, nil when the policy has none of that name.
	Template *policy.Template
	Observed Observed
	// Now is when the pass runs; a sandbox that stopped is started again
	// only once its restart pause is over.
	Now time.Time
}

// PlanFor is the pure heart of the controller: it turns desired and observed
// state into steps, doing no I/O, so that every decision is testable as text.
func PlanFor(in Input) Plan {
	var p Plan
	switch in.Class.DesiredPhase {
	case api.PhaseUp:
		p = planUp(in)
	default:
		p = planDown(in)
	}
	return append(p, recoverLeftBehind(in)...)
}

// recoverLeftBehind collects into a run of their own, then removes, the
// work volumes that sandboxes made again elsewhere left where they were,
// wherever that place is back; whatever phase the class is in, as the
// place may come back long after.
func recoverLeftBehind(in Input) Plan {
	var p Plan
	for _, s := range sortedKeys(in.Class.Status.LeftBehind) {
		for _, lb := range in.Class.Status.LeftBehind[s] {
			if !in.Observed.PlacesUp[lb.On] {
				continue
			}
			if lb.CollectedAt == nil {
				p = append(p, Action{Kind: CollectLeftBehind, Student: s, Target: lb.On})
			}
			p = append(p, Action{Kind: RemoveLeftBehind, Student: s, Target: lb.On})
		}
	}
	return p
}

func planUp(in Input) Plan {
	var p Plan
	obs := in.Observed
	run := in.Class.Status.Run
	active := run != nil && run.CompletedAt == nil
	onRoster := make(map[string]bool, len(in.Class.Spec.Students))
	for _, s := range in.Class.Spec.Students {
		onRoster[s] = true
	}
	// Students taken off the roster of an Up class are collected before
	// their containers go, like a Down of just them.
	var leavers []string
	for s := range obs.Containers {
		if !onRoster[s] {
			leavers = append(leavers, s)
		}
	}
	sort.Strings(leavers)
	if len(leavers) > 0 && !active {
		p = append(p, Action{Kind: BeginRun})
	}
	full := FullWorkspaces(in)
	if in.Template != nil {
		p = append(p, classNetwork(in)...)
		for _, s := range in.Class.Spec.Students {
			c, ok := obs.Containers[s]
			switch {
			case ok && c.Lost != "":
				// Its work volume is gone with its node: made again
				// elsewhere, with its last collected work (an autosave)
				// put back before it starts.
				p = append(p,
					Action{Kind: ReplaceContainer, Student: s, Target: c.Name},
					Action{Kind: RestoreWork, Student: s, Target: c.Name},
					Action{Kind: StartContainer, Student: s, Target: c.Name})
			case in.Class.Status.RestorePending(s) && !c.live():
				// Made again by a controller that stopped before putting
				// the work back (and maybe before making the new sandbox):
				// finished before the sandbox first starts.
				name := c.Name
				if !ok {
					name = api.ContainerName(in.Class.ID, s)
					p = append(p, Action{Kind: CreateContainer, Student: s, Target: name})
				}
				p = append(p,
					Action{Kind: RestoreWork, Student: s, Target: name},
					Action{Kind: StartContainer, Student: s, Target: name})
			case ok && restartAsked(in.Class, s, c):
				// Made again from the template; its work is on named
				// volumes, which the new container finds again.
				if c.live() {
					p = append(p, Action{Kind: StopContainer, Student: s, Target: c.Name})
				}
				p = append(p,
					Action{Kind: ReplaceContainer, Student: s, Target: c.Name},
					Action{Kind: StartContainer, Student: s, Target: c.Name})
			case ok && c.State == "running" && handInAsked(in.Class, s):
				p = append(p, Action{Kind: HandIn, Student: s, Target: c.Name})
			case !ok:
				name := api.ContainerName(in.Class.ID, s)
				p = append(p,
					Action{Kind: CreateContainer, Student: s, Target: name},
					Action{Kind: StartContainer, Student: s, Target: name})
			case c.State == "created" || c.State == "exited" || c.State == "dead":
				if c.restartPaused(in.Now) || full[s] {
					continue
				}
				if c.StartRefused && len(c.Paths) > 0 {
					// Its work is on named volumes, which a new container
					// finds again: replacing it loses nothing.
					p = append(p,
						Action{Kind: ReplaceContainer, Student: s, Target: c.Name},
						Action{Kind: StartContainer, Student: s, Target: c.Name})
					continue
				}
				p = append(p, Action{Kind: StartContainer, Student: s, Target: c.Name})
			}
		}
	}
	p = append(p, collectAndRemove(in, leavers, active)...)
	// A sandbox past its workspace cap is saved, then stopped: the autosave
	// comes first, and a failed one stops the pass before any stop.
	var stops Plan
	for _, s := range sortedKeys(full) {
		if c, ok := obs.Containers[s]; ok && c.live() {
			stops = append(stops, Action{Kind: StopContainer, Student: s, Target: c.Name})
		}
	}
	if due := AutosaveDue(in); len(stops) > 0 || (!due.IsZero() && !in.Now.Before(due) && in.Observed.Running() > 0) {
		p = append(p, Action{Kind: Autosave})
	}
	p = append(p, stops...)
	if active || len(leavers) > 0 {
		// A Down interrupted by an Up is over, and so is the collection of
		// leavers: the next Down must start a new run, or students
		// checkpointed in this one would be removed uncollected.
		p = append(p, Action{Kind: CompleteRun, Target: runTarget(run, active)})
	}
	return p
}

// restartAsked tells whether a teacher asked for student s's sandbox to be
// made again since it last was. One without named work volumes (made
// before they were) is not replaced: its work would go with it.
func restartAsked(c api.Class, s string, oc ObservedContainer) bool {
	at := c.PerStudent[s].RestartAt
	if at == nil || len(oc.Paths) == 0 {
		return false
	}
	last, ok := c.Status.Restarted[s]
	return !ok || last.Before(*at)
}

// handInAsked tells whether a teacher asked for student s's work to be
// collected since its last hand-in.
func handInAsked(c api.Class, s string) bool {
	at := c.PerStudent[s].CollectAt
	if at == nil {
		return false
	}
	last, ok := c.Status.HandIns[s]
	return !ok || last.RequestedAt.Before(*at)
}

// collectAndRemove plans the collection and removal of students' containers,
// skipping the collection of those already checkpointed in the active run.
func collectAndRemove(in Input, students []string, active bool) Plan {
	var p Plan
	collected := collectedIn(in, active)
	for _, s := range students {
		c := in.Observed.Containers[s]
		if !collected[s] {
			if in.Class.Status.RestorePending(s) && !c.live() {
				// Made again and never started: its work is still to be
				// put back, or the run would hold an empty sandbox.
				p = append(p, Action{Kind: RestoreWork, Student: s, Target: c.Name})
			}
			if c.live() {
				// Stopping first lets the student's program save, and freezes
				// the files so the archive is a consistent snapshot.
				p = append(p, Action{Kind: StopContainer, Student: s, Target: c.Name})
			}
			p = append(p, Action{Kind: Collect, Student: s, Target: c.Name})
		}
		p = append(p, Action{Kind: RemoveContainer, Student: s, Target: c.Name})
	}
	return p
}

// collectedIn lists the students checkpointed in the active run.
func collectedIn(in Input, active bool) map[string]bool {
	collected := map[string]bool{}
	if active {
		for _, st := range in.Class.Status.Students {
			if st.Artifacts != nil && st.Artifacts.RunID == in.Class.Status.Run.ID {
				collected[st.ID] = true
			}
		}
	}
	return collected
}

// collectStranded plans the collection and removal of work volumes whose
// sandbox is gone (removed by hand, or a crash between a sandbox's removal
// and its volumes').
func collectStranded(in Input, students []string, active bool) Plan {
	var p Plan
	collected := collectedIn(in, active)
	for _, s := range students {
		if !collected[s] {
			p = append(p, Action{Kind: CollectVolumes, Student: s, Target: api.RecoveryName(in.Class.ID, s)})
		}
		p = append(p, Action{Kind: RemoveVolumes, Student: s})
	}
	return p
}

func runTarget(run *api.DownRun, active bool) string {
	if active {
		return run.ID
	}
	return ""
}

func planDown(in Input) Plan {
	var p Plan
	obs := in.Observed
	run := in.Class.Status.Run
	active := run != nil && run.CompletedAt == nil
	// Students with extra time are collected when it is up, in this run;
	// a late hand-in's sandbox in a run of its own when it ends.
	extended, late := extendedKept(in), lateOpen(in)
	var down, lateEnded []string
	for s, c := range obs.Containers {
		switch {
		case c.Late && in.Class.LateAsked(s):
			if !slices.Contains(late, s) {
				lateEnded = append(lateEnded, s)
			}
		case !slices.Contains(extended, s):
			down = append(down, s)
		}
	}
	sort.Strings(down)
	sort.Strings(lateEnded)
	stranded := obs.Stranded()
	work := len(down) > 0 || len(stranded) > 0
	if !active && work {
		p = append(p, Action{Kind: BeginRun})
	}
	p = append(p, collectAndRemove(in, down, active)...)
	p = append(p, collectStranded(in, stranded, active)...)
	for _, s := range lateEnded {
		c := obs.Containers[s]
		if c.live() {
			p = append(p, Action{Kind: StopContainer, Student: s, Target: c.Name})
		}
		p = append(p, Action{Kind: LateHandIn, Student: s, Target: c.Name},
			Action{Kind: RemoveContainer, Student: s, Target: c.Name})
	}
	if len(extended) > 0 || len(late) > 0 {
		// The class stays Up for them: its network and its routes wait
		// until the last one's time is up, and so does the Down's run while
		// a student with extra time has yet to be collected into it.
		p = append(p, keepUp(in, extended, late)...)
		if len(extended) == 0 && (active || work) {
			p = append(p, Action{Kind: CompleteRun, Target: runTarget(run, active)})
		}
		return p
	}
	if obs.Traefik != nil && obs.Traefik.Attached {
		p = append(p, Action{Kind: DisconnectTraefik, Target: obs.Network.Name})
	}
	complete := active || work
	if obs.Network != nil && obs.Network.Leaked && len(obs.Containers) == 0 {
		// The daemon keeps refusing this network although nothing is on
		// it: the run is complete without it, and its removal is retried
		// last, so that it never holds the class.
		if complete {
			p = append(p, Action{Kind: CompleteRun, Target: runTarget(run, active)})
		}
		return append(p, Action{Kind: RemoveNetwork, Target: obs.Network.Name})
	}
	if obs.Network != nil {
		p = append(p, Action{Kind: RemoveNetwork, Target: obs.Network.Name})
	}
	if complete {
		p = append(p, Action{Kind: CompleteRun, Target: runTarget(run, active)})
	}
	return p
}

// classNetwork makes the class network and attaches Traefik to it, where
// either is missing.
func classNetwork(in Input) Plan {
	var p Plan
	obs := in.Observed
	net := api.NetworkName(in.Class.ID)
	if obs.Network == nil {
		p = append(p, Action{Kind: CreateNetwork, Target: net})
	}
	if obs.Traefik != nil && !obs.Traefik.HostNetwork && (obs.Network == nil || !obs.Traefik.Attached) {
		p = append(p, Action{Kind: ConnectTraefik, Target: net})
	}
	return p
}

// keepUp keeps the sandboxes of a Down class's students with extra time or
// a late hand-in running: the class network and its route, a stopped one
// started again (after its restart pause), and a late hand-in's sandbox
// made again with the student's work restored before its first start.
func keepUp(in Input, extended, late []string) Plan {
	var p Plan
	obs := in.Observed
	if in.Template == nil {
		return nil // no template: nothing to make a sandbox or network from
	}
	p = append(p, classNetwork(in)...)
	for _, s := range late {
		c, ok := obs.Containers[s]
		switch {
		case !ok:
			name := api.ContainerName(in.Class.ID, s)
			p = append(p, Action{Kind: CreateContainer, Student: s, Target: name},
				Action{Kind: RestoreWork, Student: s, Target: name},
				Action{Kind: StartContainer, Student: s, Target: name})
		case c.State == "created":
			// Never started: a crash may have come between its making
			// and its restore, which is safe to do again.
			p = append(p, Action{Kind: RestoreWork, Student: s, Target: c.Name},
				Action{Kind: StartContainer, Student: s, Target: c.Name})
		case (c.State == "exited" || c.State == "dead") && !c.restartPaused(in.Now):
			p = append(p, Action{Kind: StartContainer, Student: s, Target: c.Name})
		}
	}
	for _, s := range extended {
		c := obs.Containers[s]
		if (c.State == "created" || c.State == "exited" || c.State == "dead") && !c.restartPaused(in.Now) {
			p = append(p, Action{Kind: StartContainer, Student: s, Target: c.Name})
		}
	}
	return p
}

// ExtensionsEnd is when the next of a Down class's students with extra
// time or a late hand-in is to be collected (zero when none is).
func ExtensionsEnd(in Input) time.Time {
	var next time.Time
	if in.Class.DesiredPhase == api.PhaseUp {
		return next
	}
	ends := func(students []string, until func(api.StudentDesire) *time.Time) {
		for _, s := range students {
			if u := *until(in.Class.PerStudent[s]); next.IsZero() || u.Before(next) {
				next = u
			}
		}
	}
	ends(extendedKept(in), func(d api.StudentDesire) *time.Time { return d.Until })
	ends(lateOpen(in), func(d api.StudentDesire) *time.Time { return d.LateUntil })
	return next
}

// extendedKept lists, in order, the students of a Down class whose extra
// time runs (api.Class.Extended) and whose sandbox is still theirs: it
// exists and was not collected into the Down's run yet (one collected
// before its extra time was given is removed, or its new work would be).
func extendedKept(in Input) []string {
	if in.Class.DesiredPhase == api.PhaseUp {
		return nil
	}
	run := in.Class.Status.Run
	collected := collectedIn(in, run != nil && run.CompletedAt == nil)
	var out []string
	for s, c := range in.Observed.Containers {
		if in.Class.Extended(s, in.Now) && !c.Late && !collected[s] && c.State != "removing" {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// keptPastDown lists the students of a Down class whose sandbox is kept
// for extra time or a late hand-in.
func keptPastDown(in Input) []string { return append(extendedKept(in), lateOpen(in)...) }

// live tells a container whose processes are there (running, paused or
// restarting): stopping it lets them save first.
func (c ObservedContainer) live() bool {
	return c.State == "running" || c.State == "paused" || c.State == "restarting"
}

// lateOpen lists, in order, the students on the roster of a Down class
// whose late hand-in runs (api.Class.Late): their sandbox is kept, or made
// again, until it ends. A sandbox of theirs from before the Down is
// collected into the Down's run first.
func lateOpen(in Input) []string {
	var out []string
	for _, s := range in.Class.Spec.Students {
		if c, ok := in.Observed.Containers[s]; (!ok || c.Late) && in.Class.Late(s, in.Now) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// FullWorkspaces lists the students of an Up class whose work volumes hold
// more than the template's cap at the last measurement.
func FullWorkspaces(in Input) map[string]bool {
	if in.Class.DesiredPhase != api.PhaseUp || in.Template == nil {
		return nil
	}
	full := map[string]bool{}
	for _, s := range in.Class.Spec.Students {
		if b, ok := in.Observed.Workspaces[s]; ok && b > in.Template.WorkspaceBytes() {
			full[s] = true
		}
	}
	return full
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// AutosaveDue is when an Up class's next autosave is due: its template's
// interval after the Up, or after the last autosave if that came later.
// Zero when the class is not Up or has no template.
func AutosaveDue(in Input) time.Time {
	c := in.Class
	if c.DesiredPhase != api.PhaseUp || in.Template == nil || c.UpSince == nil {
		return time.Time{}
	}
	base := *c.UpSince
	if a := c.Status.Autosave; a != nil && a.StartedAt.After(base) {
		base = a.StartedAt
	}
	return base.Add(in.Template.AutosaveInterval())
}

// describe is used in conditions: "3 of 5 students ready". A student is
// ready when their sandbox runs and, if the template has a readiness check,
// has answered it.
func describe(running, total int) string {
	return fmt.Sprintf("%d of %d students ready", running, total)
}

// Restart pauses: a sandbox that stopped while its class is Up is started
// again RestartPause after it stopped, twice as long for each restart in a
// row after which it ran less than StableRun, up to MaxRestartPause. A
// program that crashes at once is not restarted in a loop that floods the
// daemon, and a daemon that stops every container on its way down is not
// asked to start them again before it has gone: a start that reaches a
// daemon mid-shutdown can leave a containerd task behind that makes the
// container unstartable until containerd itself is restarted.
const (
	RestartPause    = 5 * time.Second
	MaxRestartPause = 5 * time.Minute
	StableRun       = time.Minute
)

// RestartDue is when a stopped container may be started again; the zero
// time for one that never ran or whose stop time is unknown.
func (c ObservedContainer) RestartDue() time.Time {
	if c.FinishedAt.IsZero() {
		return time.Time{}
	}
	pause := RestartPause
	for i := 0; i < c.Restarts && pause < MaxRestartPause; i++ {
		pause *= 2
	}
	return c.FinishedAt.Add(min(pause, MaxRestartPause))
}

// restartPaused reports whether a stopped container is still in its
// restart pause at now.
func (c ObservedContainer) restartPaused(now time.Time) bool {
	return (c.State == "exited" || c.State == "dead") && now.Before(c.RestartDue())
}

// pausedRestarts lists, by student, the stopped sandboxes of an Up class
// (or kept past its Down) whose restart pause is not over at now.
func pausedRestarts(in Input) []ObservedContainer {
	if in.Template == nil {
		return nil
	}
	students := in.Class.Spec.Students
	if in.Class.DesiredPhase != api.PhaseUp {
		// Past a Down, only the sandboxes kept for extra time or a late
		// hand-in are started again.
		students = keptPastDown(in)
	}
	var out []ObservedContainer
	for _, s := range students {
		c, ok := in.Observed.Containers[s]
		if ok && c.restartPaused(in.Now) {
			out = append(out, c)
		}
	}
	return out
}

// NextRestart is when the first paused restart is due; zero when none is.
func NextRestart(in Input) time.Time {
	var next time.Time
	for _, c := range pausedRestarts(in) {
		if due := c.RestartDue(); next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}
