package reconcile

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Docker is what the controller needs of the Docker Engine.
type Docker interface {
	observer
	volumeLister
	volumeSizer
	RemoveVolume(ctx context.Context, name string) error
	EnsureNetwork(ctx context.Context, name string, opts network.CreateOptions) (string, error)
	UsedSubnets(ctx context.Context) ([]netip.Prefix, error)
	RemoveNetwork(ctx context.Context, id string) error
	Connect(ctx context.Context, networkID, containerID string) error
	Disconnect(ctx context.Context, networkID, containerID string) error
	CreateContainer(ctx context.Context, spec dockerx.ContainerSpec) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, grace int) error
	RemoveContainer(ctx context.Context, id string) error
	Archive(ctx context.Context, id, path string) (io.ReadCloser, error)
	CopyTo(ctx context.Context, id, dir string, r io.Reader) error
	Logs(ctx context.Context, id string) (io.ReadCloser, error)
	LogTail(ctx context.Context, id string, lines, maxBytes int) (string, error)
}

// Places is a runtime whose sandboxes run in places that can be lost and
// come back (a swarm's nodes), where a sandbox made again elsewhere leaves
// its work volumes (api.ClassStatus.LeftBehind).
type Places interface {
	// PlacesUp are the places that can be worked on now, by id.
	PlacesUp(ctx context.Context) (map[string]bool, error)
	// RemoveVolumeOn removes a work volume in that place only: the same
	// name is the live sandbox's volume where it runs now.
	RemoveVolumeOn(ctx context.Context, place, name string) error
}

// CollectedRemover is a runtime that removes a collected sandbox and its
// work volumes in one step, the volumes first: on a swarm only the sandbox
// tells on which node its volumes are, so a crash between the two removals
// must leave the sandbox, which the next pass removes the same way, rather
// than volumes nobody can find.
type CollectedRemover interface {
	RemoveCollected(ctx context.Context, name string, volumes []string) error
}

// Artifacts is what the controller needs of the object store: what the
// collector writes with, and the run index.
type Artifacts interface {
	artifacts.Objects
	artifacts.Opener
	LatestManifest(ctx context.Context, classID, studentID, since string) (string, *artifacts.Manifest, error)
	WriteRunIndex(ctx context.Context, classID, runID string, students []string, startedAt, completedAt time.Time, info artifacts.RunInfo) (*artifacts.RunIndex, error)
	DeleteAutosave(ctx context.Context, classID, runID string) error
}

// executor runs a plan. It makes no decisions: every step was chosen by the
// planner, and a step that finds its work already done succeeds.
type executor struct {
	r     *Reconciler
	class *api.Class // status is checkpointed through it as steps complete
	// orphan marks a class gone from the store: its checkpoints stay in
	// memory, and its deterministic run id keeps a retry's keys the same.
	orphan bool
	tmpl   *policy.Template
	obs    Observed
	log    *zap.Logger

	mu      sync.Mutex // guards class while students checkpoint concurrently
	network string     // id of the class network once known

	qmu     sync.Mutex // guards queue and writing
	queue   []pendingCheckpoint
	writing bool // a goroutine is committing checkpoints
}

// classID reads the class's id under the lock: checkpoints of other
// students replace the whole class while steps run.
func (e *executor) classID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.class.ID
}

// stepError ties a failure to the step that failed, for status reasons.
type stepError struct {
	Action Action
	Err    error
}

func (e *stepError) Error() string { return e.Action.String() + ": " + e.Err.Error() }
func (e *stepError) Unwrap() error { return e.Err }

func (e *executor) run(ctx context.Context, p Plan) error {
	if e.obs.Network != nil {
		e.network = e.obs.Network.ID
	}
	for i := 0; i < len(p); {
		if stopped(ctx) {
			return ErrStopped
		}
		if p[i].Kind == ConnectTraefik && i+1 < len(p) && p[i+1].Student != "" {
			// Traefik joins the class network while the sandboxes are
			// made: nothing of theirs waits for it (it finds them by
			// their labels once attached), and an Up is that much shorter.
			connect := p[i]
			done := make(chan error, 1)
			go func() { done <- e.step(ctx, connect) }()
			j := stageEnd(p, i+1)
			serr := e.stage(ctx, p[i+1:j])
			if err := <-done; err != nil {
				return errors.Join(&stepError{Action: connect, Err: err}, serr)
			}
			if serr != nil {
				return serr
			}
			i = j
			continue
		}
		if p[i].Student == "" {
			if err := e.step(ctx, p[i]); err != nil {
				return &stepError{Action: p[i], Err: err}
			}
			i++
			continue
		}
		j := stageEnd(p, i)
		if err := e.stage(ctx, p[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// stageEnd is where the stage of student steps that starts at i ends.
func stageEnd(p Plan, i int) int {
	for i < len(p) && p[i].Student != "" {
		i++
	}
	return i
}

// stage runs each student's steps in order, students concurrently: at most
// Parallel students of this class at once, and each Docker step also waits
// for a slot of the limit all classes share (see step). A failing student
// stops only its own steps; the stage reports every failure.
func (e *executor) stage(ctx context.Context, steps []Action) error {
	var order []string
	chains := map[string][]Action{}
	for _, a := range steps {
		if _, ok := chains[a.Student]; !ok {
			order = append(order, a.Student)
		}
		chains[a.Student] = append(chains[a.Student], a)
	}
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	g.SetLimit(e.r.opts.Parallel)
	for _, s := range order {
		chain := chains[s]
		g.Go(func() error {
			for _, a := range chain {
				if stopped(ctx) {
					return nil // the pass reports ErrStopped after the stage
				}
				if err := e.step(ctx, a); err != nil {
					mu.Lock()
					errs = append(errs, &stepError{Action: a, Err: err})
					mu.Unlock()
					return nil
				}
			}
			return nil
		})
	}
	g.Wait()
	if err := e.flush(ctx); err != nil {
		errs = append(errs, fmt.Errorf("write status: %w", err))
	}
	if len(errs) == 0 && stopped(ctx) {
		return ErrStopped
	}
	return errors.Join(errs...)
}

// usesDocker tells the steps that call the daemon, which take a slot of the
// global limit, from those that only write the store or the object store.
// An autosave takes a slot per student it collects, not one for them all.
func usesDocker(k Kind) bool { return k != BeginRun && k != CompleteRun && k != Autosave }

func (e *executor) step(ctx context.Context, a Action) error {
	if usesDocker(a.Kind) {
		// A slot per step, not per student: a student between its create
		// and its start lets another class's step in, so no class holds
		// the daemon while it waits on its own work.
		if err := e.r.slots.acquire(ctx); err != nil {
			return err
		}
		defer e.r.slots.release()
	}
	d := e.r.docker
	log := e.log.With(zap.String("step", string(a.Kind)))
	if a.Student != "" {
		log = log.With(zap.String("studentId", a.Student))
	}
	log.Debug("step")
	start := time.Now()
	defer func() {
		took := time.Since(start)
		e.r.metrics.stepDuration.WithLabelValues(string(a.Kind)).Observe(took.Seconds())
		log.Debug("step done", zap.Duration("took", took))
	}()
	switch a.Kind {
	case CreateNetwork:
		id, err := e.r.createNetwork(ctx, e.classID(), a.Target, e.tmpl)
		if err != nil {
			return err
		}
		e.network = id
	case ConnectTraefik:
		return d.Connect(ctx, e.network, e.obs.Traefik.ID)
	case DisconnectTraefik:
		return d.Disconnect(ctx, e.network, e.obs.Traefik.ID)
	case RemoveNetwork:
		failpoint.Hit("before-network-remove")
		err := d.RemoveNetwork(ctx, e.network)
		e.r.noteNetworkRemoval(e.network, a.Target, err)
		return err
	case CreateContainer:
		return e.create(ctx, a.Student)
	case StartContainer:
		err := d.StartContainer(ctx, a.Target)
		e.r.noteStart(e.classID(), a.Target, err)
		return err
	case ReplaceContainer:
		if c := e.obs.Containers[a.Student]; c.Lost != "" {
			// Recorded before the lost sandbox goes: a crash from here
			// until its work is put back leaves the restore still planned
			// (see planUp), where otherwise the new sandbox would start
			// empty; and its work volumes where it was are collected once
			// that place is back (see recoverLeftBehind).
			if err := e.noteReplacement(ctx, a.Student, c); err != nil {
				return err
			}
		}
		// Not RemoveContainer's step: the work volumes stay, and the
		// student is not checkpointed as removed.
		if err := d.RemoveContainer(ctx, a.Target); err != nil {
			return err
		}
		failpoint.Hit("replaced-before-create")
		return e.create(ctx, a.Student)
	case StopContainer:
		return d.StopContainer(ctx, a.Target, e.r.opts.StopGraceSeconds)
	case RemoveContainer:
		// Its work volumes go with it: it was collected and verified, or
		// this step would not run.
		var volumes []string
		for _, p := range e.obs.Containers[a.Student].Paths {
			volumes = append(volumes, api.VolumeName(e.classID(), a.Student, p))
		}
		if cr, ok := d.(CollectedRemover); ok {
			if err := cr.RemoveCollected(ctx, a.Target, volumes); err != nil {
				return err
			}
			e.noteRemoved(a.Student)
			return nil
		}
		if err := d.RemoveContainer(ctx, a.Target); err != nil {
			return err
		}
		failpoint.Hit("container-removed")
		// A crash before the volumes are gone leaves them for the next
		// Down pass, which sees them stranded.
		for _, v := range volumes {
			if err := d.RemoveVolume(ctx, v); err != nil {
				return err
			}
		}
		e.noteRemoved(a.Student)
	case Autosave:
		return e.autosave(ctx)
	case HandIn:
		return e.handIn(ctx, a.Student, a.Target, false)
	case LateHandIn:
		return e.handIn(ctx, a.Student, a.Target, true)
	case RestoreWork:
		return e.restore(ctx, a.Student, a.Target)
	case CollectLeftBehind:
		return e.collectLeftBehind(ctx, a.Student, a.Target)
	case RemoveLeftBehind:
		return e.removeLeftBehind(ctx, a.Student, a.Target)
	case CollectVolumes:
		return e.collect(ctx, a.Student, "")
	case RemoveVolumes:
		for _, v := range e.obs.Volumes[a.Student] {
			if err := d.RemoveVolume(ctx, v.Name); err != nil {
				return err
			}
		}
		return nil
	case Collect:
		return e.collect(ctx, a.Student, a.Target)
	case BeginRun:
		now := e.r.now()
		return e.checkpoint(ctx, func(st *api.ClassStatus) {
			st.Run = &api.DownRun{ID: newRunID(now), StartedAt: now}
			// Collection can take long; say so now, not at the end of the pass.
			st.Phase = api.PhaseCollecting
		})
	case CompleteRun:
		failpoint.Hit("before-complete-run")
		now := e.r.now()
		e.mu.Lock()
		run, classID, subject, students := e.class.Status.Run, e.class.ID, e.class.Spec.Subject, e.class.Spec.Students
		if e.class.DesiredPhase == api.PhaseUp && run != nil {
			// A run that ends while the class is Up collected only some
			// students (leavers, or those reached before an Up interrupted
			// a Down): the index lists those, not the whole running roster.
			students = nil
			for _, st := range e.class.Status.Students {
				if st.Artifacts != nil && st.Artifacts.RunID == run.ID {
					students = append(students, st.ID)
				}
			}
		}
		e.mu.Unlock()
		if run != nil && run.CompletedAt == nil {
			// The index is written before the run is recorded complete, so a
			// complete run always has one; rewriting it after a crash is harmless.
			idx, err := e.r.artifacts.WriteRunIndex(ctx, classID, run.ID, students, run.StartedAt, now, artifacts.RunInfo{Subject: subject})
			if err != nil {
				return fmt.Errorf("run index: %w", err)
			}
			if err := e.openGrading(ctx, classID, subject, run, idx); err != nil {
				return err
			}
		}
		return e.checkpoint(ctx, func(st *api.ClassStatus) {
			if st.Run != nil && st.Run.CompletedAt == nil {
				st.Run.CompletedAt = &now
			}
		})
	default:
		return fmt.Errorf("unknown step %q", a.Kind)
	}
	return nil
}

// newRunID sorts by time, so the latest run is the greatest id.
func newRunID(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format(runIDTime) + "-" + hex.EncodeToString(b)
}

// runIDTime is how a run id begins: the time the run began, so that ids
// sort by it.
const runIDTime = "20060102T150405Z"

// checkpoint records progress in the store before it returns, so that a
// controller restarted mid-Down resumes from it instead of starting over.
//
// Students checkpoint concurrently, and each write replaces the class's
// whole status, so writes one at a time would make a class of 100 wait on
// 200 of them in a row. Instead the checkpoints that arrive while a write is
// in flight are committed together by the next one (a group commit): each
// caller still returns only once a write holding its change succeeded, or
// with that write's error.
func (e *executor) checkpoint(ctx context.Context, mutate func(*api.ClassStatus)) error {
	done := make(chan error, 1)
	e.qmu.Lock()
	e.queue = append(e.queue, pendingCheckpoint{mutate: mutate, done: done})
	if e.writing {
		e.qmu.Unlock()
		return <-done // the writer in flight takes it in its next batch
	}
	e.writing = true
	e.qmu.Unlock()

	for {
		e.qmu.Lock()
		batch := e.queue
		e.queue = nil
		if len(batch) == 0 {
			e.writing = false
			e.qmu.Unlock()
			return <-done
		}
		e.qmu.Unlock()
		err := e.commit(ctx, batch)
		for _, c := range batch {
			if c.done != nil {
				c.done <- err
			}
		}
	}
}

// note queues a change that need not be in the store before the caller
// goes on: it is written with the next checkpoint, or by flush at the end
// of the stage. A crash (or a failed write) before then loses only the
// note, and the next pass finds out again what it said from Docker.
func (e *executor) note(mutate func(*api.ClassStatus)) {
	e.qmu.Lock()
	e.queue = append(e.queue, pendingCheckpoint{mutate: mutate})
	e.qmu.Unlock()
}

// flush writes the notes still queued.
func (e *executor) flush(ctx context.Context) error {
	return e.checkpoint(ctx, func(*api.ClassStatus) {})
}

// pendingCheckpoint is one student's change waiting for a status write;
// done is nil for a note, which nobody waits for.
type pendingCheckpoint struct {
	mutate func(*api.ClassStatus)
	done   chan error
}

// commit writes a batch of checkpoints as one status write.
func (e *executor) commit(ctx context.Context, batch []pendingCheckpoint) error {
	all := func(st *api.ClassStatus) {
		for _, c := range batch {
			c.mutate(st)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.orphan {
		all(&e.class.Status)
		return nil
	}
	return e.r.writeStatus(ctx, e.class, all)
}

// noteRemoved records that a collected student's container is gone. Nothing
// waits for that record: the student's work was checkpointed as collected
// before the removal, and a pass that finds the container gone without it
// knows as much. Waiting for it (a write of the whole status, behind the
// other students' collection checkpoints) held every student's last step,
// and its place among the steps in flight, for a write.
func (e *executor) noteRemoved(student string) {
	now := e.r.now()
	e.note(func(st *api.ClassStatus) {
		if st.Run == nil || st.Run.CompletedAt != nil {
			return
		}
		for i := range st.Students {
			if a := st.Students[i].Artifacts; st.Students[i].ID == student && a != nil && a.RunID == st.Run.ID {
				a.State, a.RemovedAt = api.CollectRemoved, &now
			}
		}
	})
}

// collect streams one student's logs and collect paths into the object
// store, writes the manifest, verifies every object, and only then
// checkpoints the student as collected. The container is removed by the
// next step, which never runs if this one fails.
func (e *executor) collect(ctx context.Context, student, name string) error {
	start := time.Now()
	bytes, err := e.collectStudent(ctx, student, name)
	m := e.r.metrics
	if err != nil {
		m.collects.WithLabelValues("failure").Inc()
		return err
	}
	m.collects.WithLabelValues("success").Inc()
	m.collectBytes.Add(float64(bytes))
	m.collectDuration.Observe(time.Since(start).Seconds())
	return nil
}

// collectStudent does the work of collect and returns the bytes uploaded.
// With name empty, the student's sandbox is gone and its stranded work
// volumes are collected through a recovery container.
func (e *executor) collectStudent(ctx context.Context, student, name string) (int64, error) {
	e.mu.Lock()
	classID, subject, run := e.class.ID, e.class.Spec.Subject, e.class.Status.Run
	e.mu.Unlock()
	if run == nil {
		return 0, errors.New("no Down run recorded")
	}
	ctx, cancel := context.WithTimeout(ctx, e.r.opts.CollectTimeout)
	defer cancel()
	rules := artifacts.RulesFor(e.tmpl)
	if name == "" {
		var err error
		if name, rules, err = e.recover(ctx, classID, student, rules); err != nil {
			return 0, err
		}
		// The recovery container holds nothing but the volumes' mounts.
		defer e.r.docker.RemoveContainer(context.WithoutCancel(ctx), name)
	}
	res, err := e.r.collector.Collect(ctx, artifacts.Request{
		ClassID: classID, Subject: subject, RunID: run.ID, StudentID: student,
		Container: name, Rules: rules,
	})
	if err != nil {
		return 0, err
	}
	failpoint.Hit("verified-before-checkpoint")
	ref := res.Ref(api.ArtifactPrefix(classID, run.ID, student))
	e.log.Info("collected", zap.String("studentId", student), zap.Int("files", ref.Files), zap.Int64("bytes", ref.Bytes),
		zap.Bool("truncated", ref.Truncated), zap.Bool("incomplete", ref.Incomplete))
	return res.Uploaded, e.checkpoint(ctx, func(st *api.ClassStatus) {
		for i := range st.Students {
			if st.Students[i].ID == student {
				st.Students[i].Artifacts = ref
				return
			}
		}
		st.Students = append(st.Students, api.StudentStatus{ID: student, Container: name, State: "exited", Artifacts: ref})
	})
}

// recover makes the container, never started, through which a student's
// stranded work volumes are collected, and the rules to collect them by:
// exactly their paths, with the template's caps.
func (e *executor) recover(ctx context.Context, classID, student string, rules artifacts.Rules) (string, artifacts.Rules, error) {
	if e.tmpl == nil {
		return "", rules, fmt.Errorf("template gone from the policy: no image to mount %s's work volumes in", student)
	}
	var paths []string
	for _, v := range e.obs.Volumes[student] {
		paths = append(paths, v.CollectPath)
	}
	rules = artifacts.Rules{Paths: paths, MaxBytes: rules.MaxBytes, MaxFiles: rules.MaxFiles, ExcludeDirs: rules.ExcludeDirs}
	spec := RecoverySpec(classID, student, e.tmpl.Image, e.tmpl.Name, rules)
	if _, err := e.r.docker.CreateContainer(ctx, spec); err != nil {
		return "", rules, fmt.Errorf("recovery container: %w", err)
	}
	return spec.Name, rules, nil
}

// autosave collects every running sandbox of the class, without stopping
// it, into a new run of kind autosave, records it in status, and then
// deletes the autosave it supersedes. A student whose collection fails is
// listed as missing in the run's index; the autosave fails only when no
// student could be collected, and is then retried like any failed step.
func (e *executor) autosave(ctx context.Context) error {
	start := e.r.now()
	runID := newRunID(start)
	e.mu.Lock()
	classID, subject, prev := e.class.ID, e.class.Spec.Subject, e.class.Status.Autosave
	roster := e.class.Spec.Students
	e.mu.Unlock()
	var students []string
	for _, s := range roster {
		if c, ok := e.obs.Containers[s]; ok && c.State == "running" {
			students = append(students, s)
		}
	}
	var (
		g      errgroup.Group
		mu     sync.Mutex
		failed []error
		saved  []string // container ids
	)
	g.SetLimit(e.r.opts.Parallel)
	for _, s := range students {
		g.Go(func() error {
			if err := e.r.slots.acquire(ctx); err != nil {
				return err
			}
			defer e.r.slots.release()
			cctx, cancel := context.WithTimeout(ctx, e.r.opts.CollectTimeout)
			defer cancel()
			_, err := e.r.collector.Collect(cctx, artifacts.Request{
				ClassID: classID, Subject: subject, RunID: runID, StudentID: s,
				Container: e.obs.Containers[s].Name, Rules: artifacts.RulesFor(e.tmpl),
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				e.log.Warn("autosave of a student failed", zap.String("studentId", s), zap.Error(err))
				failed = append(failed, fmt.Errorf("%s: %w", s, err))
				return nil
			}
			saved = append(saved, e.obs.Containers[s].ID)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(students) > 0 && len(failed) == len(students) {
		e.r.metrics.autosaves.WithLabelValues("failure").Inc()
		return fmt.Errorf("no student could be autosaved: %w", errors.Join(failed...))
	}
	done := e.r.now()
	if _, err := e.r.artifacts.WriteRunIndex(ctx, classID, runID, students, start, done, artifacts.RunInfo{Subject: subject, Kind: artifacts.RunKindAutosave}); err != nil {
		return fmt.Errorf("autosave index: %w", err)
	}
	slices.Sort(saved)
	rec := &api.Autosave{RunID: runID, StartedAt: start, CompletedAt: done, Collected: len(saved), Failed: len(failed), Containers: saved}
	if err := e.checkpoint(ctx, func(st *api.ClassStatus) { st.Autosave = rec }); err != nil {
		return err
	}
	e.r.metrics.autosaves.WithLabelValues("success").Inc()
	e.log.Info("autosaved", zap.String("runId", runID), zap.Int("collected", rec.Collected), zap.Int("failed", rec.Failed))
	if prev != nil && prev.RunID != runID && supersedes(rec, prev) {
		// Only once the new one is recorded; a failure leaves an extra
		// autosave behind, never none.
		if err := e.r.artifacts.DeleteAutosave(ctx, classID, prev.RunID); err != nil {
			e.log.Warn("the superseded autosave could not be deleted", zap.String("runId", prev.RunID), zap.Error(err))
		}
	}
	return nil
}

// create makes student's sandbox from the template. A sandbox made anew
// answers a restart asked of the one before, or asked while it was gone.
func (e *executor) create(ctx context.Context, student string) error {
	e.mu.Lock()
	classID, up := e.class.ID, e.class.DesiredPhase == api.PhaseUp
	e.mu.Unlock()
	spec := ContainerSpec(classID, student, e.tmpl, e.r.opts.Domain, e.r.opts.ForwardAuth)
	if !up {
		// A Down class's plan makes sandboxes only for late hand-ins. The
		// label is not part of the config hash: should the class come Up
		// meanwhile, the sandbox is simply the student's.
		spec.Config.Labels[api.LabelLate] = "true"
	}
	if _, err := e.r.docker.CreateContainer(ctx, spec); err != nil {
		return err
	}
	return e.noteRestarted(ctx, student)
}

// noteRestarted records that a teacher's restart request for student was
// answered, once its sandbox was made again: a crash before leaves the
// request to be answered again, which loses nothing (the work volumes
// stay).
func (e *executor) noteRestarted(ctx context.Context, student string) error {
	e.mu.Lock()
	at := e.class.PerStudent[student].RestartAt
	last, answered := e.class.Status.Restarted[student]
	e.mu.Unlock()
	if at == nil || (answered && !last.Before(*at)) {
		return nil // no restart asked, or answered already
	}
	return e.checkpoint(ctx, func(st *api.ClassStatus) { st.Restarted = withKey(st.Restarted, student, *at) })
}

// handIn collects one student's sandbox as a run of its own at a teacher's
// request, and records it in the status: an early hand-in (kind student)
// of a running sandbox, or the end of a late hand-in (kind late), whose run
// is graded like a Down's. The request is answered, and asking again makes
// another run.
func (e *executor) handIn(ctx context.Context, student, name string, late bool) error {
	start := e.r.now()
	runID := newRunID(start)
	e.mu.Lock()
	classID, subject, d := e.class.ID, e.class.Spec.Subject, e.class.PerStudent[student]
	e.mu.Unlock()
	at, kind, what := d.CollectAt, artifacts.RunKindStudent, "hand-in"
	if late {
		at, kind, what = d.LateAt, artifacts.RunKindLate, "late hand-in"
	}
	if at == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.r.opts.CollectTimeout)
	defer cancel()
	_, idx, done, err := e.collectRun(cctx, artifacts.Request{
		ClassID: classID, Subject: subject, RunID: runID, StudentID: student,
		Container: name, Rules: artifacts.RulesFor(e.tmpl),
	}, start, kind)
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, student, err)
	}
	if late {
		if err := e.openGrading(ctx, classID, subject, &api.DownRun{ID: runID}, idx); err != nil {
			return err
		}
	}
	rec := api.HandIn{RunID: runID, RequestedAt: *at, CollectedAt: done}
	e.log.Info("handed in", zap.String("studentId", student), zap.String("runId", runID), zap.String("kind", kind))
	return e.checkpoint(ctx, func(st *api.ClassStatus) {
		if late {
			st.Late = withKey(st.Late, student, rec)
		} else {
			st.HandIns = withKey(st.HandIns, student, rec)
		}
	})
}

// collectRun collects one student's container into a run of its own, of
// kind, begun at start, and writes that run's index: a hand-in's, a late
// hand-in's, or the work a lost node kept. It returns what was collected,
// the index, and when the collection was done.
func (e *executor) collectRun(ctx context.Context, req artifacts.Request, start time.Time, kind string) (*artifacts.Result, *artifacts.RunIndex, time.Time, error) {
	res, err := e.r.collector.Collect(ctx, req)
	if err != nil {
		e.r.metrics.collects.WithLabelValues("failure").Inc()
		return nil, nil, time.Time{}, err
	}
	e.r.metrics.collects.WithLabelValues("success").Inc()
	e.r.metrics.collectBytes.Add(float64(res.Uploaded))
	done := e.r.now()
	idx, err := e.r.artifacts.WriteRunIndex(ctx, req.ClassID, req.RunID, []string{req.StudentID}, start, done, artifacts.RunInfo{Subject: req.Subject, Kind: kind})
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("index of run %s: %w", req.RunID, err)
	}
	return res, idx, done, nil
}

// restore copies student's last collected work into their sandbox, made
// again and not started yet (for a late hand-in, or elsewhere than a lost
// node): each collect path's files from the manifest of the latest run
// that collected the student (the Down's, a hand-in's, an autosave's),
// checked against it as they stream from the object store, owned by
// whoever owns the (new, empty) work volume, as the files the student
// makes. Copying again over a crash's half restore is harmless.
func (e *executor) restore(ctx context.Context, student, name string) error {
	failpoint.Hit("before-restore")
	lost := e.obs.Containers[student].Lost
	e.mu.Lock()
	if r := e.class.Status.Restored[student]; lost == "" && r.Pending {
		lost = r.Reason // made again by a controller that stopped before this
	}
	classID, since := e.class.ID, ""
	switch {
	case lost != "" && e.class.UpSince != nil:
		// Work of this Up only: its sandboxes started from the template.
		since = e.class.UpSince.UTC().Format(runIDTime)
	case lost == "" && e.class.Status.Run != nil:
		since = e.class.Status.Run.ID // a late hand-in: the Down's work, or later
	}
	e.mu.Unlock()
	note := func(r api.Restored) error {
		if lost == "" {
			return nil
		}
		r.At, r.Reason = e.r.now(), lost
		return e.noteRestore(ctx, student, r)
	}
	ctx, cancel := context.WithTimeout(ctx, e.r.opts.CollectTimeout)
	defer cancel()
	runID, m, err := e.r.artifacts.LatestManifest(ctx, classID, student, since)
	if errors.Is(err, artifacts.ErrNotFound) {
		return note(api.Restored{}) // never collected: the sandbox starts from its template
	}
	if err != nil {
		return fmt.Errorf("latest collected work of %s: %w", student, err)
	}
	files := 0
	for _, p := range artifacts.RulesFor(e.tmpl).Paths {
		base := strings.TrimPrefix(p, "/") + "/"
		n, err := e.restorePath(ctx, name, p, m.Files, func(rel string) string {
			if strings.HasPrefix(rel, base) {
				return strings.TrimPrefix(rel, base)
			}
			return ""
		})
		if err != nil {
			return fmt.Errorf("restore %s from run %s: %w", p, runID, err)
		}
		files += n
	}
	why := "a late hand-in"
	if lost != "" {
		why = lost
	}
	e.log.Info("restored work", zap.String("studentId", student), zap.String("runId", runID), zap.Int("files", files), zap.String("why", why))
	return note(api.Restored{RunID: runID, CollectedAt: m.CollectedAt, Files: files})
}

// noteReplacement records, in one write, that the lost sandbox c of
// student is being made again with its work still to put back, and where
// it leaves its work volumes.
func (e *executor) noteReplacement(ctx context.Context, student string, c ObservedContainer) error {
	now := e.r.now()
	return e.checkpoint(ctx, func(st *api.ClassStatus) {
		st.Restored = withKey(st.Restored, student, api.Restored{Reason: c.Lost, At: now, Pending: true})
		if c.LostOn == "" {
			return
		}
		lbs := slices.Clone(st.LeftBehind[student])
		if i := slices.IndexFunc(lbs, func(lb api.LeftBehind) bool { return lb.On == c.LostOn }); i >= 0 && lbs[i].CollectedAt == nil {
			return // known already: a replacement begun again after a crash
		} else if i >= 0 {
			// Collected before, and the sandbox was made there again since
			// and lost again: what is there now is collected anew.
			lbs = slices.Delete(lbs, i, i+1)
		}
		st.LeftBehind = withKey(st.LeftBehind, student, append(lbs, api.LeftBehind{On: c.LostOn, Reason: c.Lost, Since: now, RunID: newRunID(now)}))
	})
}

// leftBehind is student's work volumes left at on, as the class records
// them, if it does.
func (e *executor) leftBehind(student, on string) (api.LeftBehind, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, lb := range e.class.Status.LeftBehind[student] {
		if lb.On == on {
			return lb, true
		}
	}
	return api.LeftBehind{}, false
}

// editLeftBehind applies edit to student's record of work volumes left at
// on; edit returns false to drop it.
func (e *executor) editLeftBehind(ctx context.Context, student, on string, edit func(*api.LeftBehind) bool) error {
	return e.checkpoint(ctx, func(st *api.ClassStatus) {
		var kept []api.LeftBehind
		for _, lb := range st.LeftBehind[student] {
			if lb.On != on || edit(&lb) {
				kept = append(kept, lb)
			}
		}
		st.LeftBehind = maps.Clone(st.LeftBehind)
		if len(kept) == 0 {
			delete(st.LeftBehind, student)
		} else {
			st.LeftBehind[student] = kept
		}
	})
}

// collectLeftBehind collects the work volumes student's sandbox left at
// on, now that it is back, into their own run of kind recovered: through
// a recovery container the runtime makes there, the one collection path,
// verified as every other. It is what the student did after the work that
// was restored into their new sandbox.
func (e *executor) collectLeftBehind(ctx context.Context, student, on string) error {
	lb, ok := e.leftBehind(student, on)
	if !ok || lb.CollectedAt != nil {
		return nil
	}
	if e.tmpl == nil {
		return fmt.Errorf("template gone from the policy: no image to mount %s's work volumes on %s in", student, on)
	}
	e.mu.Lock()
	classID, subject := e.class.ID, e.class.Spec.Subject
	e.mu.Unlock()
	rules := artifacts.RulesFor(e.tmpl)
	spec := RecoverySpec(classID, student, e.tmpl.Image, e.tmpl.Name, rules)
	spec.Config.Labels[api.LabelRecoverOn] = on
	ctx, cancel := context.WithTimeout(ctx, e.r.opts.CollectTimeout)
	defer cancel()
	if _, err := e.r.docker.CreateContainer(ctx, spec); err != nil {
		return fmt.Errorf("recovery container on %s: %w", on, err)
	}
	defer e.r.docker.RemoveContainer(context.WithoutCancel(ctx), spec.Name)
	res, _, done, err := e.collectRun(ctx, artifacts.Request{
		ClassID: classID, Subject: subject, RunID: lb.RunID, StudentID: student,
		Container: spec.Name, Rules: rules,
	}, lb.Since, artifacts.RunKindRecovered)
	if err != nil {
		return fmt.Errorf("work of %s left on %s: %w", student, on, err)
	}
	files := len(res.Manifest.Files)
	e.log.Info("collected work left behind", zap.String("studentId", student), zap.String("on", on), zap.String("runId", lb.RunID), zap.Int("files", files))
	return e.editLeftBehind(ctx, student, on, func(lb *api.LeftBehind) bool {
		lb.CollectedAt, lb.Files = &done, files
		return true
	})
}

// removeLeftBehind removes, at on only, the work volumes student's sandbox
// left there, once they are collected and verified; then the record goes.
func (e *executor) removeLeftBehind(ctx context.Context, student, on string) error {
	lb, ok := e.leftBehind(student, on)
	if !ok {
		return nil
	}
	if lb.CollectedAt == nil {
		return fmt.Errorf("work of %s left on %s is not collected yet", student, on)
	}
	pl, ok := e.r.docker.(Places)
	if !ok || e.tmpl == nil {
		return fmt.Errorf("cannot remove the work volumes %s left on %s here", student, on)
	}
	e.mu.Lock()
	classID := e.class.ID
	e.mu.Unlock()
	// A recovery container a crash left goes first: it holds the volumes.
	if err := e.r.docker.RemoveContainer(ctx, api.RecoveryName(classID, student)); err != nil {
		return err
	}
	for _, p := range artifacts.RulesFor(e.tmpl).Paths {
		if err := pl.RemoveVolumeOn(ctx, on, api.VolumeName(classID, student, p)); err != nil {
			return err
		}
	}
	return e.editLeftBehind(ctx, student, on, func(*api.LeftBehind) bool { return false })
}

// noteRestore records r as student's last restore.
func (e *executor) noteRestore(ctx context.Context, student string, r api.Restored) error {
	return e.checkpoint(ctx, func(st *api.ClassStatus) { st.Restored = withKey(st.Restored, student, r) })
}

// withKey is a copy of m with m[k] = v: a status's map may be shared with
// the class as read, so it is never written in place.
func withKey[V any](m map[string]V, k string, v V) map[string]V {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]V{}
	}
	out[k] = v
	return out
}

// restorePath copies into collect path p of container name the files that
// name maps there, and returns how many.
func (e *executor) restorePath(ctx context.Context, name, p string, files []artifacts.File, under func(string) string) (int, error) {
	n := 0
	for _, f := range files {
		if rel, err := f.Rel(); err != nil || under(rel) != "" {
			n++ // a bad entry is reported by WriteFiles
		}
	}
	if n == 0 {
		return 0, nil
	}
	uid, gid, err := e.owner(ctx, name, p)
	if err != nil {
		return 0, err
	}
	werr, cerr := artifacts.Stream(func(w io.Writer) error {
		tw := tar.NewWriter(w)
		if err := artifacts.WriteFiles(ctx, tw, e.r.artifacts, files, artifacts.Layout{
			Name: under, UID: uid, GID: gid, FileMode: 0o644, DirMode: 0o755,
		}); err != nil {
			return err
		}
		return tw.Close()
	}, func(r io.Reader) error { return e.r.docker.CopyTo(ctx, name, p, r) })
	if werr != nil {
		return 0, werr
	}
	return n, cerr
}

// owner is who owns directory p of container name: a new work volume is
// its image's directory, owned by the sandbox's user.
func (e *executor) owner(ctx context.Context, name, p string) (uid, gid int, err error) {
	rc, err := e.r.docker.Archive(ctx, name, p)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	hdr, err := tar.NewReader(rc).Next()
	if err != nil {
		return 0, 0, fmt.Errorf("read %s's owner: %w", p, err)
	}
	return hdr.Uid, hdr.Gid, nil
}

// supersedes tells whether an autosave holds at least what the one before
// held: every sandbox that one collected, collected again. A sandbox made
// again in between is a new container, and its earlier work survives only
// in the earlier autosave.
func supersedes(next, prev *api.Autosave) bool {
	for _, id := range prev.Containers {
		if _, found := slices.BinarySearch(next.Containers, id); !found {
			return false
		}
	}
	return true
}
