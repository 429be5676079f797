package grading

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
)

// Store is what grading needs of the store.
type Store interface {
	OpenGradings(ctx context.Context) ([]string, error)
	GradingByID(ctx context.Context, id string) (*api.Grading, error)
	RecordGrade(ctx context.Context, id, student string, r api.GradingStudent) error
	CloseGrading(ctx context.Context, id string) error
}

// Objects is what grading needs of the object store.
type Objects interface {
	GetManifest(ctx context.Context, classID, runID, studentID string) (*artifacts.Manifest, error)
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	PutJSON(ctx context.Context, key string, v any) (artifacts.Object, error)
	GetJSON(ctx context.Context, key string, v any) error
}

// Docker is what grading needs of the daemon (dockerx.Client).
type Docker interface {
	ListGraders(ctx context.Context) ([]container.Summary, error)
	CreateFresh(ctx context.Context, spec dockerx.ContainerSpec) (string, error)
	CopyTo(ctx context.Context, id, dir string, r io.Reader) error
	StartContainer(ctx context.Context, id string) error
	Wait(ctx context.Context, id string) (int64, error)
	InspectContainer(ctx context.Context, id string) (container.InspectResponse, error)
	Archive(ctx context.Context, id, path string) (io.ReadCloser, error)
	LogTail(ctx context.Context, id string, lines, maxBytes int) (string, error)
	StopContainer(ctx context.Context, id string, grace int) error
	RemoveContainer(ctx context.Context, id string) error
}

// Slots bounds Docker steps across the controller: grading takes its turns
// from the same pool as the class passes, one step at a time, and holds
// none while a grader runs.
type Slots interface {
	Acquire(ctx context.Context) (release func(), err error)
}

// Options tune a Grader.
type Options struct {
	// Parallel bounds the graders running at once (DefaultParallel).
	Parallel int
	// Graded is told the class whose grading moved, so that its Graded
	// condition is brought up to date.
	Graded     func(classID string)
	Registerer prometheus.Registerer
	// SweepEvery is how often graders are looked for while no grading is
	// open (DefaultSweepEvery): those a crash or a closed grading left
	// behind go then. While one is open they are looked for every pass.
	SweepEvery time.Duration
}

// progressEvery is how often, at most, a class is told how far its grading
// is (its Graded condition's "n of N students graded"); the gradebook shows
// each student's outcome as soon as it is recorded.
const progressEvery = 5 * time.Second

// DefaultSweepEvery is the controller's resync interval: a controller at
// rest makes no Docker call for grading between two.
const DefaultSweepEvery = 30 * time.Second

// DefaultParallel graders at once: each gets a template's CPUs, and a
// machine grading while classes run still has room for them.
const DefaultParallel = 4

// Paths inside a grader container.
const (
	SubmissionDir = "/submission"
	GradeDir      = "/grade"
	GradeFile     = GradeDir + "/grade.json"
)

// Grader runs graders for the open gradings.
type Grader struct {
	store   Store
	docker  Docker
	objects Objects
	policy  *policy.Policy
	slots   Slots
	opts    Options
	log     *zap.Logger
	metrics *metrics

	mu       sync.Mutex
	inFlight map[string]bool // grading id + "/" + student
	// recorded holds, by grading id + "/" + student, the attempt this
	// controller last recorded an outcome of: a pass that read the grading
	// just before that outcome was written does not start it again.
	recorded map[string]int
	// running has a token for each grader that runs (Parallel places);
	// readying, for each student whose submission is read from the object
	// store for the grader to come (as many): a place is taken only with
	// the submission in hand, so that the object store is not waited on
	// while a place is held.
	running  chan struct{}
	readying chan struct{}
	wg       sync.WaitGroup
	// told holds, by grading id, how many outcomes the class was last told
	// of, and when: its Graded condition is brought up to date at most
	// every progressEvery while graders run, and at once when all are
	// done. Each update is a pass over the class (its Docker calls, and
	// reads of the class and the grading) and a write of its whole status:
	// once a second, that was a sixth more Docker calls than the graders'
	// own for a run of 100, and most of the store's work.
	told map[string]toldState
	// wake has a value when one of a batch's last students was graded:
	// the next pass, which may close the grading, need not wait for its
	// tick. (A place a student frees goes to the batch's next at once.)
	wake chan struct{}
	// swept is when graders were last listed; listed holds, by grading
	// id, the attempt they were last listed for (see Pass).
	swept  time.Time
	listed map[string]int
}

// Wake has a value when a pass now would find more to start.
func (g *Grader) Wake() <-chan struct{} { return g.wake }

// New returns a Grader.
func New(s Store, d Docker, o Objects, p *policy.Policy, slots Slots, opts Options, log *zap.Logger) *Grader {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.Graded == nil {
		opts.Graded = func(string) {}
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	return &Grader{store: s, docker: d, objects: o, policy: p, slots: slots, opts: opts, log: log,
		metrics: newMetrics(opts.Registerer), inFlight: map[string]bool{}, recorded: map[string]int{}, running: make(chan struct{}, opts.Parallel), readying: make(chan struct{}, opts.Parallel),
		wake: make(chan struct{}, 1), told: map[string]toldState{}, listed: map[string]int{}}
}

// Wait waits for the students in flight: a shutdown cancels the waits for
// running graders (the next controller takes them up) but lets results
// already known be stored.
func (g *Grader) Wait() { g.wg.Wait() }

// Pass starts work on every student of an open grading that has none
// running, removes graders nothing wants any more, and closes gradings
// that are done. It does not wait for the graders it starts, and reports
// whether a grading is still open: while none is, passes are only needed
// when one opens (the store's change count says so) or to sweep.
//
// The daemon is asked for the graders that exist only when they can tell
// something this controller does not know: the first time it sees an
// attempt (a grader an earlier controller left, to resume), after one of
// its students failed to be graded (a grader left behind), and every
// SweepEvery (graders of closed gradings). Passes come with every store
// change and every grader that ends; a Docker call each time would cost a
// class at rest, its Down and the grading itself.
func (g *Grader) Pass(ctx context.Context) (open bool, err error) {
	ids, err := g.store.OpenGradings(ctx)
	if err != nil {
		return true, err
	}
	var gradings []*api.Grading
	for _, id := range ids {
		gr, err := g.store.GradingByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			g.log.Info("grading gone; closing it", zap.String("grading", id))
			if err := g.store.CloseGrading(ctx, id); err != nil {
				return true, err
			}
			g.forget(id)
			continue
		}
		if err != nil {
			return true, err
		}
		gradings = append(gradings, gr)
	}
	list := time.Since(g.swept) >= g.opts.SweepEvery
	g.mu.Lock()
	for _, gr := range gradings {
		if a, ok := g.listed[gr.ID]; !ok || a != gr.Attempt {
			list = true
		}
	}
	g.mu.Unlock()
	var containers map[string]container.Summary // grading id/student/attempt → its grader
	if list {
		cs, err := g.docker.ListGraders(ctx)
		if err != nil {
			return true, err
		}
		g.swept = time.Now()
		containers = map[string]container.Summary{}
		for _, c := range cs {
			containers[c.Labels[api.LabelGrading]+"/"+c.Labels[api.LabelGradeStudent]+"/"+c.Labels[api.LabelGradeAttempt]] = c
		}
		g.mu.Lock()
		for _, gr := range gradings {
			g.listed[gr.ID] = gr.Attempt
		}
		g.mu.Unlock()
	}
	wanted := map[string]bool{}
	for _, gr := range gradings {
		pending := gr.Pending()
		if len(pending) == 0 {
			if err := g.store.CloseGrading(ctx, gr.ID); err != nil {
				return true, err
			}
			g.notify(gr, true)
			g.forget(gr.ID)
			continue
		}
		g.notify(gr, false)
		open = true
		b := &batch{gr: gr, existing: map[string]*container.Summary{}}
		for _, student := range pending {
			key := gr.ID + "/" + student + "/" + strconv.Itoa(gr.Attempt)
			wanted[key] = true
			if c, has := containers[key]; has {
				b.existing[student] = &c
			}
			b.todo = append(b.todo, student)
		}
		g.fill(ctx, b)
	}
	// Graders of attempts no longer wanted (a regrade replaced them, or
	// their result is recorded) go, unless their student is in flight.
	for key, c := range containers {
		if wanted[key] {
			continue
		}
		student := c.Labels[api.LabelGrading] + "/" + c.Labels[api.LabelGradeStudent]
		if !g.begin(student, 0) {
			continue
		}
		err := g.step(ctx, func() error { return g.docker.RemoveContainer(ctx, c.ID) })
		g.end(student)
		if err != nil {
			g.log.Warn("remove a grader no longer wanted", zap.String("container", c.Names[0]), zap.Error(err))
		}
	}
	return open, nil
}

// forget drops what is kept of a closed grading.
func (g *Grader) forget(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.listed, id)
	for k := range g.recorded {
		if strings.HasPrefix(k, id+"/") {
			delete(g.recorded, k)
		}
	}
}

type toldState struct {
	outcomes int
	at       time.Time
}

// notify tells the class of new outcomes of its grading (see told).
func (g *Grader) notify(gr *api.Grading, done bool) {
	graded, failed := gr.Counts()
	n := graded + failed
	g.mu.Lock()
	last, seen := g.told[gr.ID]
	tell := !seen || done || (n != last.outcomes && time.Since(last.at) >= progressEvery)
	if done {
		delete(g.told, gr.ID)
	} else if tell {
		g.told[gr.ID] = toldState{outcomes: n, at: time.Now()}
	}
	g.mu.Unlock()
	if tell {
		g.opts.Graded(gr.ClassID)
	}
}

func (g *Grader) signal() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// batch is the students of one grading a pass found pending, in order.
// Each place freed by one of its graders starts the next of them at once,
// without waiting for a pass.
type batch struct {
	gr       *api.Grading
	mu       sync.Mutex
	todo     []string
	existing map[string]*container.Summary // their graders, as the pass found them
}

// drained tells whether every student of the batch has been started.
func (b *batch) drained() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.todo) == 0
}

// fill starts readying the batch's next students while there is room.
func (g *Grader) fill(ctx context.Context, b *batch) {
	for ctx.Err() == nil {
		select {
		case g.readying <- struct{}{}:
		default:
			return // every room taken: one freed calls fill again
		}
		student, ok := g.take(b)
		if !ok {
			<-g.readying
			return
		}
		g.wg.Add(1)
		go g.work(ctx, b, student)
	}
}

// take returns the batch's next student that is not in flight, marking it.
func (g *Grader) take(b *batch) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.todo) > 0 {
		student := b.todo[0]
		b.todo = b.todo[1:]
		if g.begin(b.gr.ID+"/"+student, b.gr.Attempt) {
			return student, true
		}
	}
	return "", false
}

// work grades one student of the batch: it readies the submission, then
// holds one place until the student's grader has stopped. Storing the
// outcome needs no grader running: the place goes to the next student
// readied at once, and the room readying took to the batch's next student
// as soon as the place was taken.
func (g *Grader) work(ctx context.Context, b *batch, student string) {
	defer g.wg.Done()
	key := b.gr.ID + "/" + student
	p := &place{g: g}
	p.onTaken = func() { <-g.readying; g.fill(ctx, b) }
	recorded := false
	defer func() {
		if recorded {
			g.mu.Lock()
			g.recorded[key] = b.gr.Attempt
			g.mu.Unlock()
		}
		g.end(key)
		if !recorded {
			// A grader may be left behind: the next pass looks for it.
			g.mu.Lock()
			delete(g.listed, b.gr.ID)
			g.mu.Unlock()
		}
		// After a failure the room and the place are freed without
		// readying another: the next pass, at its tick, tries again, so
		// that a broken store or daemon is not asked in a loop.
		p.release()
		if recorded && b.drained() {
			// The batch's last students: the next pass closes the grading
			// when they are done. Before that, passes come at the tick, to
			// tell the class how far grading is; a pass for every student
			// graded read the grading, a document of every result, from the
			// store a hundred times over for a run of 100.
			g.signal()
		}
	}()
	recorded = g.gradeStudent(ctx, b.gr, student, b.existing[student], p)
}

// place is one student's way through readying, its grader's place, and
// out: each token is given back once.
type place struct {
	g       *Grader
	onTaken func() // the readying room is given up, to the next student
	mu      sync.Mutex
	readied bool // the readying room was given up
	taken   bool // a place is held
	freed   bool // the place was given back
}

// take waits for a grader's place, then gives up the readying room.
func (p *place) take(ctx context.Context) error {
	select {
	case p.g.running <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	p.taken = true
	p.mu.Unlock()
	p.readyDone()
	return nil
}

// readyDone gives up the readying room to the batch's next student: the
// submission is in hand, or no grader is needed.
func (p *place) readyDone() {
	p.mu.Lock()
	ready := !p.readied
	p.readied = true
	p.mu.Unlock()
	if ready {
		p.onTaken()
	}
}

// free gives the place back: the grader has stopped.
func (p *place) free() {
	p.mu.Lock()
	give := p.taken && !p.freed
	p.freed = true
	p.mu.Unlock()
	if give {
		<-p.g.running
	}
}

// release gives back whatever is still held, readying no one.
func (p *place) release() {
	p.free()
	p.mu.Lock()
	ready := !p.readied
	p.readied = true
	p.mu.Unlock()
	if ready {
		<-p.g.readying
	}
}

// begin marks a student in flight, unless it is, or (attempt above 0) its
// outcome of that attempt was recorded already.
func (g *Grader) begin(key string, attempt int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[key] || (attempt > 0 && g.recorded[key] >= attempt) {
		return false
	}
	g.inFlight[key] = true
	return true
}

func (g *Grader) end(key string) {
	g.mu.Lock()
	delete(g.inFlight, key)
	g.mu.Unlock()
}

// step runs one Docker step in a slot of the controller's pool.
func (g *Grader) step(ctx context.Context, fn func() error) error {
	release, err := g.slots.Acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	return fn()
}

// gradeStudent grades one student's submission for the grading's current
// attempt, resuming from whatever an earlier controller left: a record in
// the object store, a grader that ran or still runs. The record is stored
// before the outcome is written to the store, and the container removed
// last, so that a crash anywhere leaves something the next pass finishes
// without running the grader again.
func (g *Grader) gradeStudent(ctx context.Context, gr *api.Grading, student string, existing *container.Summary, p *place) (recorded bool) {
	log := g.log.With(zap.String("classId", gr.ClassID), zap.String("runId", gr.RunID),
		zap.String("studentId", student), zap.Int("attempt", gr.Attempt))
	id := gr.ID
	if id == "" {
		id = api.GradingID(gr.ClassID, gr.RunID)
	}
	// Once the outcome is known it is stored even if the controller is
	// stopping: running the grader again would cost far more.
	wctx := context.WithoutCancel(ctx)
	ph := newPhases()
	var rec api.GradeRecord
	err := g.objects.GetJSON(ctx, api.GradeAttemptKey(gr.ClassID, gr.RunID, student, gr.Attempt), &rec)
	switch {
	case err == nil:
		log.Info("grade already stored; recording it")
		p.readyDone()
	case !errors.Is(err, artifacts.ErrNotFound):
		log.Warn("read a stored grade; trying again later", zap.Error(err))
		return false
	default:
		sub, err := g.ready(ctx, gr, student, existing)
		if err != nil {
			log.Warn("read the submission; trying again later", zap.Error(err))
			return false
		}
		ph.mark("lookup")
		if err := p.take(ctx); err != nil {
			return false
		}
		ph.mark("wait")
		r, err := g.run(ctx, gr, student, existing, sub, log, ph)
		if err != nil {
			// Not the grader's fault (the daemon, the object store): the
			// next pass tries again.
			log.Warn("grading interrupted; trying again later", zap.Error(err))
			return false
		}
		rec = *r
		p.free()
		if _, err := g.objects.PutJSON(wctx, api.GradeAttemptKey(gr.ClassID, gr.RunID, student, gr.Attempt), rec); err != nil {
			log.Warn("store the grade; trying again later", zap.Error(err))
			return false
		}
	}
	// The latest grade beside the manifest, for those who read the run's
	// objects rather than the API. Rewritten after a crash: harmless.
	ph.mark("store")
	if _, err := g.objects.PutJSON(wctx, api.GradeKey(gr.ClassID, gr.RunID, student), rec); err != nil {
		log.Warn("store the latest grade; trying again later", zap.Error(err))
		return false
	}
	out := api.GradingStudent{State: rec.State, Attempt: rec.Attempt, Reason: rec.Reason, GradedAt: rec.FinishedAt}
	if rec.Grade != nil {
		score, max := rec.Grade.Score, rec.Grade.MaxScore
		out.Score, out.MaxScore = &score, &max
	}
	if err := g.store.RecordGrade(wctx, id, student, out); err != nil {
		log.Warn("record the grade; trying again later", zap.Error(err))
		return false
	}
	g.metrics.results.WithLabelValues(resultLabel(rec.State)).Inc()
	ph.mark("record")
	name := api.GraderName(gr.ClassID, gr.RunID, student, gr.Attempt)
	if err := g.step(wctx, func() error { return g.docker.RemoveContainer(wctx, name) }); err != nil {
		log.Warn("remove the grader (the next pass does)", zap.Error(err))
	}
	ph.mark("remove")
	if rec.State == api.GradeFailed {
		log.Info("grading failed", append(ph.spent, zap.String("reason", rec.Reason))...)
	} else {
		log.Info("graded", append(ph.spent, zap.Float64("score", rec.Grade.Score), zap.Float64("maxScore", rec.Grade.MaxScore))...)
	}
	return true
}

// phases times one student's grading, for the log: where it goes.
type phases struct {
	last  time.Time
	spent []zap.Field
}

func newPhases() *phases { return &phases{last: time.Now()} }

func (p *phases) mark(name string) {
	now := time.Now()
	p.spent = append(p.spent, zap.Duration(name, now.Sub(p.last)))
	p.last = now
}

func resultLabel(state string) string {
	if state == api.GradeGraded {
		return "graded"
	}
	return "failed"
}

// run makes sure the student's grader has run and returns its outcome. An
// error means the outcome is not known yet; a grader that fails is an
// outcome (GradeFailed), not an error.
func (g *Grader) run(ctx context.Context, gr *api.Grading, student string, existing *container.Summary, sub *submission, log *zap.Logger, ph *phases) (*api.GradeRecord, error) {
	rec := &api.GradeRecord{SchemaVersion: 1, ClassID: gr.ClassID, RunID: gr.RunID, StudentID: student, Attempt: gr.Attempt}
	fail := func(format string, args ...any) (*api.GradeRecord, error) {
		rec.State, rec.Reason = api.GradeFailed, fmt.Sprintf(format, args...)
		if rec.FinishedAt.IsZero() {
			rec.FinishedAt = time.Now().UTC()
		}
		return rec, nil
	}
	tmpl, ok := g.policy.Template(gr.Template)
	if !ok || tmpl.Grader == nil {
		return fail("the policy has no grader for template %q", gr.Template)
	}
	grader := tmpl.Grader
	rec.Image = grader.Image
	name := api.GraderName(gr.ClassID, gr.RunID, student, gr.Attempt)

	id := ""
	if existing != nil {
		id = existing.ID
		if existing.State == "created" {
			// Made but never started: its files may be half copied.
			if err := g.step(ctx, func() error { return g.docker.RemoveContainer(ctx, id) }); err != nil {
				return nil, err
			}
			id = ""
		}
	}
	// A grader this pass starts is known to run from then on; one an
	// earlier controller left is asked how it is. Either way the daemon is
	// asked again only when the grader did not exit cleanly: for OOM and
	// the exit code's cause, which Wait does not tell.
	var started time.Time
	running := true
	if id == "" {
		if sub == nil {
			var err error
			if sub, err = g.ready(ctx, gr, student, nil); err != nil {
				return nil, err
			}
		}
		if sub.m == nil {
			return fail("no collected work: the run has no manifest for %s", student)
		}
		if sub.bad != "" {
			return fail("%s", sub.bad)
		}
		err := g.step(ctx, func() error {
			var err error
			id, err = g.start(ctx, gr, student, grader, name, sub)
			return err
		})
		var bad *badSubmission
		if errors.As(err, &bad) {
			return fail("%s", bad.reason)
		}
		if err != nil {
			return nil, err
		}
		started = time.Now()
		log.Debug("grader started", zap.String("container", name))
	} else {
		info, err := g.docker.InspectContainer(ctx, id)
		if err != nil {
			return nil, err
		}
		started, _ = time.Parse(time.RFC3339Nano, info.State.StartedAt)
		if started.IsZero() {
			started = time.Now()
		}
		running = info.State.Running
	}
	ph.mark("start")
	rec.StartedAt = started.UTC()
	deadline := started.Add(grader.Timeout())
	timedOut, clean := false, false
	if running {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		g.metrics.running.Inc()
		code, werr := g.docker.Wait(wctx, id)
		g.metrics.running.Dec()
		cancel()
		switch {
		case werr == nil:
			clean = code == 0
			rec.FinishedAt = time.Now().UTC()
		case time.Now().Before(deadline):
			return nil, werr
		default:
			timedOut = true
			// RemoveContainer would take the logs with it: kill only.
			if err := g.step(ctx, func() error { return g.docker.StopContainer(ctx, id, 0) }); err != nil {
				return nil, err
			}
		}
	}
	var info container.InspectResponse
	if !clean {
		var err error
		if info, err = g.docker.InspectContainer(ctx, id); err != nil {
			return nil, err
		}
		if fin, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt); err == nil && fin.After(started) {
			rec.FinishedAt = fin.UTC()
		} else if rec.FinishedAt.IsZero() {
			rec.FinishedAt = time.Now().UTC()
		}
	}
	tail := func() string {
		t, err := g.docker.LogTail(ctx, id, 20, 4<<10)
		if err != nil || strings.TrimSpace(t) == "" {
			return ""
		}
		return "; its last output:\n" + t
	}
	switch {
	case timedOut || rec.FinishedAt.Sub(started) > grader.Timeout():
		return fail("the grader did not finish within %s%s", grader.Timeout(), tail())
	case clean:
	case info.State.OOMKilled:
		return fail("the grader ran out of memory (%d MiB)%s", grader.MemoryMiB, tail())
	case info.State.ExitCode != 0:
		return fail("the grader exited with code %d%s", info.State.ExitCode, tail())
	}
	ph.mark("run")
	b, err := g.readGrade(ctx, id)
	ph.mark("read")
	var bad *badSubmission
	if errors.As(err, &bad) {
		return fail("%s%s", bad.reason, tail())
	}
	if err != nil {
		return nil, err
	}
	grade, err := Parse(b)
	if err != nil {
		return fail("%s", err.Error())
	}
	rec.State, rec.Grade = api.GradeGraded, grade
	return rec, nil
}

// badSubmission is an outcome found while preparing or reading a grader:
// it fails the student's grading instead of being retried.
type badSubmission struct{ reason string }

func (b *badSubmission) Error() string { return b.reason }

// submission is a student's collected work readied for their grader before
// it takes a place: the manifest (nil when the run has none for the
// student), and the tar to copy in when it is small enough to hold (else
// it streams from the object store while the place is held), or why it
// cannot be graded.
type submission struct {
	m   *artifacts.Manifest
	tar []byte
	bad string
}

// readyMaxBytes bounds a submission held in memory: Parallel of them are
// readied at once.
const readyMaxBytes = 4 << 20

// ready reads the student's submission for a grader to come. A grader
// left by an earlier controller needs none (unless it never started).
func (g *Grader) ready(ctx context.Context, gr *api.Grading, student string, existing *container.Summary) (*submission, error) {
	if existing != nil && existing.State != "created" {
		return nil, nil
	}
	tmpl, ok := g.policy.Template(gr.Template)
	if !ok || tmpl.Grader == nil {
		return nil, nil // run fails the student for it
	}
	m, err := g.objects.GetManifest(ctx, gr.ClassID, gr.RunID, student)
	if errors.Is(err, artifacts.ErrNotFound) {
		return &submission{}, nil
	}
	if err != nil {
		return nil, err
	}
	sub := &submission{m: m}
	if m.TotalBytes > readyMaxBytes {
		return sub, nil
	}
	var b bytes.Buffer
	err = g.writeSubmission(ctx, &b, m, tmpl.Grader)
	var bad *badSubmission
	switch {
	case errors.As(err, &bad):
		sub.bad = bad.reason
	case err != nil:
		return nil, err
	default:
		sub.tar = b.Bytes()
	}
	return sub, nil
}

// start creates the grader, copies the student's files in and starts it.
func (g *Grader) start(ctx context.Context, gr *api.Grading, student string, grader *policy.Grader, name string, sub *submission) (string, error) {
	spec := Spec(gr, student, grader, name)
	id, err := g.docker.CreateFresh(ctx, spec)
	if dockerx.IsNotFound(err) {
		// The policy names an image the daemon does not have: an admin's
		// mistake that trying again does not mend (a regrade after the
		// image is built does).
		return "", &badSubmission{fmt.Sprintf("the grader's image %s is not on the daemon (build or pull it, then grade again)", grader.Image)}
	}
	if errors.Is(err, dockerx.ErrExists) {
		// Left by an earlier try that this pass's listing missed: start
		// over with a container whose contents are known.
		if err := g.docker.RemoveContainer(ctx, name); err != nil {
			return "", err
		}
		id, err = g.docker.CreateFresh(ctx, spec)
	}
	if err != nil {
		return "", err
	}
	copyIn := func(r io.Reader) error { return g.docker.CopyTo(ctx, id, "/", r) }
	var werr, cerr error
	if sub.tar != nil {
		cerr = copyIn(bytes.NewReader(sub.tar))
	} else {
		werr, cerr = artifacts.Stream(func(w io.Writer) error { return g.writeSubmission(ctx, w, sub.m, grader) }, copyIn)
	}
	if werr != nil || cerr != nil {
		_ = g.docker.RemoveContainer(ctx, id)
		if werr != nil {
			return "", werr // a badSubmission is told apart by the caller
		}
		return "", cerr
	}
	if err := g.docker.StartContainer(ctx, id); err != nil {
		return "", err
	}
	return id, nil
}

// Spec is the locked-down container a grader runs in: no network,
// no capabilities, no new privileges, the policy's user and limits, a
// small /tmp, and logs capped on disk.
func Spec(gr *api.Grading, student string, grader *policy.Grader, name string) dockerx.ContainerSpec {
	pids := grader.PIDs
	mem := grader.MemoryMiB << 20
	return dockerx.ContainerSpec{
		Name: name,
		Config: &container.Config{
			Image: grader.Image,
			Cmd:   grader.Command,
			User:  grader.User,
			Env: []string{
				"HOMEROOM_CLASS_ID=" + gr.ClassID, "HOMEROOM_RUN_ID=" + gr.RunID, "HOMEROOM_STUDENT_ID=" + student,
				"HOMEROOM_SUBMISSION=" + SubmissionDir, "HOMEROOM_GRADE=" + GradeFile, "HOME=/tmp",
			},
			NetworkDisabled: true,
			Labels: map[string]string{
				api.LabelManagedBy: api.ManagedByValue, api.LabelGrading: api.GradingID(gr.ClassID, gr.RunID),
				api.LabelGradeStudent: student, api.LabelGradeAttempt: strconv.Itoa(gr.Attempt),
			},
		},
		HostConfig: &container.HostConfig{
			NetworkMode: "none",
			CapDrop:     []string{"ALL"},
			SecurityOpt: []string{"no-new-privileges"},
			Tmpfs:       map[string]string{"/tmp": "rw,nosuid,nodev,size=64m"},
			LogConfig:   container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "1"}},
			Resources: container.Resources{
				Memory: mem, MemorySwap: mem, NanoCPUs: int64(grader.CPUs * 1e9), PidsLimit: &pids,
			},
		},
	}
}

// writeSubmission writes the tar the grader is filled from: the student's
// collected files under /submission, root's and read-only, each checked
// against its manifest's hash as it streams from the object store; and
// /grade, the one directory the grader may write.
func (g *Grader) writeSubmission(ctx context.Context, w io.Writer, m *artifacts.Manifest, grader *policy.Grader) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	dir := func(name string, uid, gid int, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid, ModTime: now})
	}
	if err := dir(strings.TrimPrefix(GradeDir, "/"), grader.UID(), grader.GID(), 0o700); err != nil {
		return err
	}
	root := strings.TrimPrefix(SubmissionDir, "/")
	if err := dir(root, 0, 0, 0o555); err != nil {
		return err
	}
	err := artifacts.WriteFiles(ctx, tw, g.objects, m.Files, artifacts.Layout{
		Name: func(rel string) string { return root + "/" + rel },
		Root: root, FileMode: 0o444, DirMode: 0o555,
	})
	if bf := (*artifacts.BadFile)(nil); errors.As(err, &bf) {
		return &badSubmission{bf.Reason}
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

// readGrade reads GradeFile out of the stopped grader, at most
// MaxGradeBytes of it.
func (g *Grader) readGrade(ctx context.Context, id string) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	rc, err := g.docker.Archive(actx, id, GradeFile)
	if dockerx.IsNotFound(err) {
		return nil, &badSubmission{"the grader exited without writing " + GradeFile}
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		return nil, err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil, &badSubmission{GradeFile + " is not a regular file"}
	}
	if hdr.Size > MaxGradeBytes {
		return nil, &badSubmission{fmt.Sprintf("%s is %d bytes, more than %d", GradeFile, hdr.Size, MaxGradeBytes)}
	}
	return io.ReadAll(io.LimitReader(tr, MaxGradeBytes))
}

type metrics struct {
	results *prometheus.CounterVec
	running prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_grades_total", Help: "Students graded, by result: graded, or failed (the grader timed out, crashed or wrote no valid grade.json).",
		}, []string{"result"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "homeroom_graders_running", Help: "Grader containers this controller is waiting for.",
		}),
	}
	m.results.WithLabelValues("graded")
	m.results.WithLabelValues("failed")
	if reg != nil {
		reg.MustRegister(m.results, m.running)
	}
	return m
}
