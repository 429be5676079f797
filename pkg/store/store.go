// Package store keeps classes in MongoDB (or anything speaking its wire
// protocol, such as the embedded FerretDB in this package). It is the only
// place that knows how a class is laid out as a document and how concurrent
// writers are kept from overwriting each other.
package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
)

// ErrNotFound means the class does not exist. It is wrapped with the class
// id, so compare with errors.Is.
var ErrNotFound = errors.New("not found")

// ErrConflict means a concurrent write won: the version the caller based its
// write on is gone. The caller re-reads and decides again; the store never
// overwrites a write it has not seen.
var ErrConflict = errors.New("conflict")

// ErrUnchanged is returned by an Update function to say there is nothing to
// write, so that a no-op does not bump the version and wake up every poller.
var ErrUnchanged = errors.New("unchanged")

const (
	// DefaultDatabase is used when Open is given no database name.
	DefaultDatabase = "homeroom"
	collectionName  = "classes"

	// callTimeout bounds every single round trip, so that a stuck server
	// fails one request instead of hanging a reconcile loop or an HTTP
	// handler whose caller forgot a deadline.
	callTimeout = 10 * time.Second

	// maxAttempts bounds the read-modify-write loop. A lost race means
	// somebody else made progress, so a few retries are enough unless a
	// writer is starved, which the caller should then hear about.
	maxAttempts = 5
)

// Store reads and writes classes. It is safe for concurrent use; the
// underlying client pools connections.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	coll   *mongo.Collection
	log    *zap.Logger

	// statusWrites wakes the goroutine that counts status writes (see
	// changesID): a burst of writes is counted with one write after it,
	// off the controller's path. done ends it.
	statusWrites chan struct{}
	countOnce    sync.Once
	done         chan struct{}
	closeOnce    sync.Once
}

// Open connects to uri and checks that the server answers, so that a wrong
// address fails at startup rather than on the first request. Classes live in
// the collection "classes" of database ("" means DefaultDatabase); tests
// give each test a database of its own on a shared server. Every call a Store
// makes later is bounded by a timeout of its own within ctx's.
func Open(ctx context.Context, uri, database string, log *zap.Logger) (*Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if database == "" {
		database = DefaultDatabase
	}
	opts := options.Client().
		ApplyURI(uri).
		SetAppName("homeroom").
		// Without these the driver waits 30s before it admits that nothing
		// listens, which makes a misconfiguration look like a hang.
		SetConnectTimeout(5 * time.Second).
		SetServerSelectionTimeout(5 * time.Second)
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", redact(uri), err)
	}
	db := client.Database(database)
	s := &Store{
		client: client,
		db:     db,
		coll:   db.Collection(collectionName),
		log:    log,

		statusWrites: make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("connect %s: %w", redact(uri), err)
	}
	// No secondary index is created: every query on classes is by _id or
	// a full scan that needs all documents anyway (List, Versions), and an
	// index nobody queries only slows writes down. The other collections
	// (registry.go, tokens.go, audit.go) are small or, for the audit
	// trail, read a page at a time in _id order.
	log.Debug("store opened", zap.String("uri", redact(uri)), zap.String("database", database))
	return s, nil
}

// redact hides a password so that URIs can be logged and put in errors.
func redact(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		// Do not echo what may hold a password in some unparsed form.
		return "<unparsable mongodb uri>"
	}
	return u.Redacted()
}

// Close disconnects, waiting for in-flight operations up to ctx's deadline.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.done) })
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("disconnect: %w", err)
	}
	return nil
}

// Ping checks that the server answers; it backs readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Get returns the class with the given id.
func (s *Store) Get(ctx context.Context, id string) (*api.Class, error) {
	raw, err := s.getRaw(ctx, id)
	if err != nil {
		return nil, err
	}
	return decode(raw)
}

// getRaw returns the undecoded document so that a caller can decode it more
// than once: Update hands one copy to fn and keeps a pristine one.
func (s *Store) getRaw(ctx context.Context, id string) (bson.Raw, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	raw, err := s.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("class %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get class %q: %w", id, err)
	}
	return raw, nil
}

func decode(raw bson.Raw) (*api.Class, error) {
	var c api.Class
	if err := bson.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("decode class: %w", err)
	}
	return &c, nil
}

// List returns every class ordered by id, so that API listings and tests are
// stable.
func (s *Store) List(ctx context.Context) ([]api.Class, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur, err := s.coll.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list classes: %w", err)
	}
	// A non-nil empty slice so that an empty listing encodes as [] in JSON.
	classes := []api.Class{}
	if err := cur.All(ctx, &classes); err != nil {
		return nil, fmt.Errorf("list classes: %w", err)
	}
	return classes, nil
}

// Versions returns the version of every class by id. It projects only those
// two fields so that the controller can poll for changes cheaply: the store
// has no change streams (FerretDB lacks them), and a full List on every tick
// would move every status over the wire.
func (s *Store) Versions(ctx context.Context) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur, err := s.coll.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "version", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	var rows []struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"version"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	versions := make(map[string]int64, len(rows))
	for _, r := range rows {
		versions[r.ID] = r.Version
	}
	return versions, nil
}

// VersionsOf is Versions for the given classes only: a class missing from
// the result does not exist. It backs the apiserver's long polls, which wait
// on a few classes among many.
func (s *Store) VersionsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	versions := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return versions, nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur, err := s.coll.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "version", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	var rows []struct {
		ID      string `bson:"_id"`
		Version int64  `bson:"version"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	for _, r := range rows {
		versions[r.ID] = r.Version
	}
	return versions, nil
}

func isDuplicateKey(err error) bool { return mongo.IsDuplicateKeyError(err) }

// PutSpec creates the class or replaces its spec, and reports whether it
// created it. Generation counts spec changes only, so that the controller's
// observedGeneration means "I have acted on what the teacher asked", and
// re-sending the same spec (a retried PUT) is not a change. A change is
// recorded in the audit trail (class.create or class.update) as made by the
// actor of ctx.
func (s *Store) PutSpec(ctx context.Context, id string, spec api.ClassSpec) (*api.Class, bool, error) {
	return s.PutSpecIf(ctx, id, spec, nil)
}

// PutSpecIf is PutSpec with a condition: check sees the class as stored (nil
// when it does not exist yet) and its error refuses the write, returned as
// is. It runs on the version that is written, so a decision such as "this
// teacher owns the class" cannot be made stale by a concurrent write.
func (s *Store) PutSpecIf(ctx context.Context, id string, spec api.ClassSpec, check func(*api.Class) error) (*api.Class, bool, error) {
	// The caller keeps its slice; what we store must not change under us.
	spec.Students = slices.Clone(spec.Students)
	for attempt := 1; ; attempt++ {
		old, c, err := s.update(ctx, id, func(c *api.Class) error {
			if check != nil {
				if err := check(c); err != nil {
					return err
				}
			}
			if specEqual(c.Spec, spec) {
				return ErrUnchanged
			}
			if !reflect.DeepEqual(c.Spec.Schedule, spec.Schedule) {
				c.ScheduledSince = scheduledSince(spec)
			}
			c.Spec = spec
			c.Generation++
			return nil
		})
		if err == nil && old != nil {
			s.record(ctx, api.AuditEntry{Action: api.AuditClassUpdate, Target: "class/" + id, ClassID: id,
				Subjects: []string{old.Spec.Subject, c.Spec.Subject}, From: api.ClassState(old), To: api.ClassState(c)})
		}
		if !errors.Is(err, ErrNotFound) {
			return c, false, err
		}
		if check != nil {
			if err := check(nil); err != nil {
				return nil, false, err
			}
		}

		now := now()
		c = &api.Class{
			ID:           id,
			Spec:         spec,
			DesiredPhase: api.PhaseDown,
			Generation:   1,
			Version:      1,
			CreatedAt:    now,
			UpdatedAt:    now,
			Status:       api.ClassStatus{Phase: api.PhasePending},
		}
		// No desiredAt: nobody chose Down, it is where a class starts, and
		// a timetable set with it acts on a session already open.
		c.ScheduledSince = scheduledSince(spec)
		ictx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err = s.coll.InsertOne(ictx, c)
		cancel()
		if err == nil {
			s.bumpChanges(ctx)
			s.record(ctx, api.AuditEntry{Action: api.AuditClassCreate, Target: "class/" + id, ClassID: id,
				Subjects: []string{spec.Subject}, To: api.ClassState(c)})
			return c, true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, false, fmt.Errorf("create class %q: %w", id, err)
		}
		// Another creator got there between our read and our insert; the
		// unique _id made us lose, so our spec becomes an update of theirs.
		// Loop rather than call Update once: the class may also have been
		// deleted again in the meantime.
		if attempt == maxAttempts {
			return nil, false, fmt.Errorf("create class %q after %d attempts: %w", id, attempt, ErrConflict)
		}
		s.log.Debug("create lost a race, updating instead", zap.String("class", id))
	}
}

// specEqual treats a nil and an empty roster as the same spec: they encode
// differently but mean the same, and a difference must not bump generation.
// DeepEqual on the rest keeps a field added to ClassSpec later from being
// silently ignored here.
func specEqual(a, b api.ClassSpec) bool {
	if a.Students == nil {
		a.Students = []string{}
	}
	if b.Students == nil {
		b.Students = []string{}
	}
	return reflect.DeepEqual(a, b)
}

// SetDesiredPhase records whether the teacher wants the class up or down.
// Generation is bumped only on a change, so repeating a click does not make
// the controller think there is something new to do. A change is recorded in
// the audit trail (class.up or class.down) as made by the actor of ctx.
func (s *Store) SetDesiredPhase(ctx context.Context, id string, phase api.Phase) (*api.Class, error) {
	return s.SetDesiredPhaseIf(ctx, id, phase, nil)
}

// SetDesiredPhaseIf is SetDesiredPhase with a condition on the class as
// stored, checked on the version that is written (see PutSpecIf): an Up is
// admitted on the very spec it brings Up. check runs even when the phase is
// already the one asked for, so that a refused caller learns it either way.
func (s *Store) SetDesiredPhaseIf(ctx context.Context, id string, phase api.Phase, check func(*api.Class) error) (*api.Class, error) {
	action := api.AuditClassDown
	if phase == api.PhaseUp {
		action = api.AuditClassUp
	}
	old, c, err := s.update(ctx, id, func(c *api.Class) error {
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		if c.DesiredPhase == phase {
			return ErrUnchanged
		}
		t := now()
		c.DesiredPhase, c.DesiredAt, c.Bell = phase, &t, nil
		c.DownReason = ""
		if phase == api.PhaseUp {
			c.UpSince = &t
		}
		c.Generation++
		return nil
	})
	if err == nil && old != nil {
		s.record(ctx, api.AuditEntry{Action: action, Target: "class/" + id, ClassID: id,
			Subjects: []string{c.Spec.Subject}, From: api.ClassState(old), To: api.ClassState(c)})
	}
	return c, err
}

// ErrNotExpired is returned by Expire when the class is no longer the Up it
// was asked to expire: a teacher brought it Down or Up again meanwhile.
var ErrNotExpired = errors.New("class is not that expired Up")

// Expire takes an Up class Down because its TTL ran out. It is the one change
// of desired state the controller makes, and only for the Up that started at
// upSince, so that a teacher's newer Up or Down always wins. It is recorded
// in the audit trail as class.expire by the controller, whatever ctx says:
// only the controller calls it.
func (s *Store) Expire(ctx context.Context, id string, upSince time.Time) (*api.Class, error) {
	old, c, err := s.update(ctx, id, func(c *api.Class) error {
		if c.DesiredPhase != api.PhaseUp || c.UpSince == nil || !c.UpSince.Equal(upSince) {
			return ErrNotExpired
		}
		t := now()
		c.DesiredPhase, c.DesiredAt, c.Bell = api.PhaseDown, &t, nil
		c.DownReason = api.ReasonTTLExpired
		c.Generation++
		return nil
	})
	if err == nil {
		s.record(ctx, api.AuditEntry{Actor: api.Actor{Name: api.ControllerActor, Role: api.RoleController},
			Action: api.AuditClassExpire, Target: "class/" + id, ClassID: id,
			Subjects: []string{c.Spec.Subject}, From: api.ClassState(old), To: api.ClassState(c)})
	}
	return c, err
}

// ErrNotScheduled is returned by ApplySchedule when the class changed
// since the schedule's decision: a teacher acted, or the schedule changed.
var ErrNotScheduled = errors.New("class changed since the schedule's decision")

// ApplySchedule sets the desired phase the timetable asks for at event
// time at, for the class as read with desiredAt and scheduledSince, so that
// a teacher's newer Up or Down, or a new schedule, always wins. An Up
// records bell, the session it is for; its TTL counts from now. It is
// recorded in the audit trail as class.schedule by the controller.
func (s *Store) ApplySchedule(ctx context.Context, id string, phase api.Phase, at, bell time.Time, desiredAt, scheduledSince *time.Time) (*api.Class, error) {
	old, c, err := s.update(ctx, id, func(c *api.Class) error {
		if !sameTime(c.DesiredAt, desiredAt) || !sameTime(c.ScheduledSince, scheduledSince) || c.Spec.Schedule == nil {
			return ErrNotScheduled
		}
		t := now()
		at := at.UTC()
		c.DesiredAt = &at
		if c.DesiredPhase == phase {
			// The event is recorded (it is not to be applied again), the
			// phase already is the one it asks for.
			return nil
		}
		c.DesiredPhase, c.DownReason, c.Bell = phase, "", nil
		if phase == api.PhaseUp {
			c.UpSince = &t
			if !bell.IsZero() {
				b := bell.UTC()
				c.Bell, c.ScheduledBell = &b, &b
			}
		} else {
			c.DownReason = api.ReasonScheduled
		}
		c.Generation++
		return nil
	})
	if err == nil && old.DesiredPhase != c.DesiredPhase {
		s.record(ctx, api.AuditEntry{Actor: api.Actor{Name: api.ControllerActor, Role: api.RoleController},
			Action: api.AuditClassSchedule, Target: "class/" + id, ClassID: id,
			Subjects: []string{c.Spec.Subject}, From: api.ClassState(old), To: api.ClassState(c)})
	}
	return c, err
}

// ErrClassNotUp refuses a request about one student of a class that is not
// Up: there is no sandbox to act on.
var ErrClassNotUp = errors.New("the class is not Up")

// ErrNotOnRoster refuses a request about a student the class's roster does
// not list.
var ErrNotOnRoster = errors.New("not on the class's roster")

// AskForStudent records a teacher's request about one student of a class
// (api.StudentDesire): set changes the student's desire, given the class as
// stored and the time of the request, or refuses (ErrClassNotUp). check
// runs on the class as stored, as in SetDesiredPhaseIf. It is recorded in
// the audit trail as action by the actor of ctx.
func (s *Store) AskForStudent(ctx context.Context, id, student, action string, set func(*api.StudentDesire, *api.Class, time.Time) error, check func(*api.Class) error) (*api.Class, error) {
	old, c, err := s.update(ctx, id, func(c *api.Class) error {
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		if !slices.Contains(c.Spec.Students, student) {
			return fmt.Errorf("student %q: %w", student, ErrNotOnRoster)
		}
		per := maps.Clone(c.PerStudent)
		if per == nil {
			per = map[string]api.StudentDesire{}
		}
		d := per[student]
		if err := set(&d, c, now()); err != nil {
			return err
		}
		per[student] = d
		c.PerStudent = per
		c.Generation++
		return nil
	})
	if err == nil {
		s.record(ctx, api.AuditEntry{Action: action, Target: "class/" + id + "/student/" + student, ClassID: id,
			Subjects: []string{c.Spec.Subject}, From: api.ClassState(old), To: api.ClassState(c)})
	}
	return c, err
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

// scheduledSince is when a spec's schedule takes effect: now, or never for
// a spec without one.
func scheduledSince(spec api.ClassSpec) *time.Time {
	if spec.Schedule == nil {
		return nil
	}
	t := now()
	return &t
}

// Update reads the class, lets fn change it and writes it back only if
// nobody wrote in between (the filter holds the version read). On a lost race
// it starts again from the read, so fn always decides on the current
// document; fn must therefore be safe to call more than once. fn's own errors
// abort and are returned as is; ErrUnchanged from fn returns the class as
// read without writing. The id, version, createdAt and updatedAt are the
// store's to set and are overwritten whatever fn does with them.
//
// Update writes no audit record: the changes of desired state go through
// PutSpec, SetDesiredPhase, Expire and Delete, which do.
func (s *Store) Update(ctx context.Context, id string, fn func(*api.Class) error) (*api.Class, error) {
	_, c, err := s.update(ctx, id, fn)
	return c, err
}

// update is Update that also returns the class as it was before the write,
// or nil when nothing was written.
func (s *Store) update(ctx context.Context, id string, fn func(*api.Class) error) (before, after *api.Class, err error) {
	for attempt := 1; ; attempt++ {
		raw, err := s.getRaw(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		c, err := decode(raw)
		if err != nil {
			return nil, nil, err
		}
		if err := fn(c); err != nil {
			if errors.Is(err, ErrUnchanged) {
				// fn may have scribbled on c before giving up.
				c, err := decode(raw)
				return nil, c, err
			}
			return nil, nil, err
		}
		old, err := decode(raw)
		if err != nil {
			return nil, nil, err
		}
		c.ID = id
		c.Version = old.Version + 1
		c.CreatedAt = old.CreatedAt
		c.UpdatedAt = now()

		written, err := s.replace(ctx, id, old.Version, c)
		if err == nil {
			return old, written, nil
		}
		if !errors.Is(err, ErrConflict) {
			return nil, nil, err
		}
		if attempt == maxAttempts {
			return nil, nil, fmt.Errorf("update class %q after %d attempts: %w", id, attempt, err)
		}
		s.log.Debug("update lost a race, retrying", zap.String("class", id), zap.Int("attempt", attempt))
		if err := backoff(ctx, attempt); err != nil {
			return nil, nil, err
		}
	}
}

// replace writes c if the stored class still has version, and returns the
// class as the server now holds it.
func (s *Store) replace(ctx context.Context, id string, version int64, c *api.Class) (*api.Class, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var written api.Class
	err := s.coll.FindOneAndReplace(ctx,
		bson.D{{Key: "_id", Value: id}, {Key: "version", Value: version}},
		c,
		options.FindOneAndReplace().SetReturnDocument(options.After),
	).Decode(&written)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Changed or deleted since the read; the caller's next read tells
		// which.
		return nil, fmt.Errorf("class %q version %d: %w", id, version, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("write class %q: %w", id, err)
	}
	s.bumpChanges(ctx)
	return &written, nil
}

// UpdateStatus writes what the controller observed. It is conditional on the
// version the controller planned from: if the teacher changed the class
// meanwhile, the status would describe a world planned for an old spec, so
// the write is refused with ErrConflict and the controller passes again. Only
// status, updatedAt and version are written, so a status write can never undo
// a spec write.
func (s *Store) UpdateStatus(ctx context.Context, id string, version int64, st api.ClassStatus) (*api.Class, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var written api.Class
	err := s.coll.FindOneAndUpdate(cctx,
		bson.D{{Key: "_id", Value: id}, {Key: "version", Value: version}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "status", Value: st}, {Key: "updatedAt", Value: now()}}},
			{Key: "$inc", Value: bson.D{{Key: "version", Value: int64(1)}}},
		},
		options.FindOneAndUpdate().SetReturnDocument(options.After),
	).Decode(&written)
	if err == nil {
		s.countStatusWrite()
		return &written, nil
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("update status of class %q: %w", id, err)
	}
	// Tell "gone" from "changed": the controller forgets a deleted class but
	// re-reads a changed one.
	if _, err := s.getRaw(ctx, id); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("status of class %q at version %d: %w", id, version, ErrConflict)
}

// Delete removes the class if check approves of it as currently stored (for
// example "only when Down"). The delete is conditional on the version check
// saw, so a class that changed after the check is checked again rather than
// deleted on stale grounds. It is recorded in the audit trail as
// class.delete by the actor of ctx.
func (s *Store) Delete(ctx context.Context, id string, check func(*api.Class) error) error {
	for attempt := 1; ; attempt++ {
		c, err := s.Get(ctx, id)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(c); err != nil {
				return err
			}
		}
		dctx, cancel := context.WithTimeout(ctx, callTimeout)
		res, err := s.coll.DeleteOne(dctx, bson.D{{Key: "_id", Value: id}, {Key: "version", Value: c.Version}})
		cancel()
		if err != nil {
			return fmt.Errorf("delete class %q: %w", id, err)
		}
		if res.DeletedCount == 1 {
			s.bumpChanges(ctx)
			s.record(ctx, api.AuditEntry{Action: api.AuditClassDelete, Target: "class/" + id, ClassID: id,
				Subjects: []string{c.Spec.Subject}, From: api.ClassState(c)})
			return nil
		}
		if attempt == maxAttempts {
			return fmt.Errorf("delete class %q after %d attempts: %w", id, attempt, ErrConflict)
		}
		s.log.Debug("delete lost a race, retrying", zap.String("class", id), zap.Int("attempt", attempt))
		if err := backoff(ctx, attempt); err != nil {
			return err
		}
	}
}

// backoff sleeps a little and randomly before a retry, so that writers that
// collided once do not collide again in lockstep.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(5*attempt)) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// now is UTC at millisecond precision, which is what a BSON datetime holds:
// a time that is already what the server will return makes a written class
// compare equal to the same class read back.
func now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}
