package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
)

const auditCollection = "audit"

type actorKey struct{}

// WithActor returns a context whose writes are recorded in the audit trail as
// made by a. The apiserver puts the caller there; a write whose context has
// no actor is recorded as made by api.SystemActor.
func WithActor(ctx context.Context, a api.Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// ActorFrom returns the actor of ctx, or the system actor.
func ActorFrom(ctx context.Context) api.Actor {
	if a, ok := ctx.Value(actorKey{}).(api.Actor); ok && a.Name != "" {
		return a
	}
	return api.Actor{Name: api.SystemActor, Role: api.RoleSystem}
}

// auditAttempts bounds the retries of an audit write. The change it records
// has already been written, so giving up loses the record, not the change.
const auditAttempts = 3

// record appends an entry for a change that has been written. There are no
// multi-document transactions in FerretDB, so the record cannot be written
// with the change: it is written right after, on a context that the caller
// hanging up does not cancel, and retried. If it still fails the entry is
// logged in full at error level, so that it is in the operator's log at
// least, and the change stands.
func (s *Store) record(ctx context.Context, e api.AuditEntry) {
	if e.Actor.Name == "" {
		e.Actor = ActorFrom(ctx)
	}
	// The id takes the clock at microseconds, so that the entries of one
	// process sort in the order of its changes; the time is what BSON keeps.
	t := time.Now().UTC()
	e.Time = t.Truncate(time.Millisecond)
	e.ID = auditID(t)
	e.Subjects = compactSubjects(e.Subjects)
	actx := context.WithoutCancel(ctx)
	var err error
	for attempt := 1; attempt <= auditAttempts; attempt++ {
		cctx, cancel := context.WithTimeout(actx, callTimeout)
		_, err = s.db.Collection(auditCollection).InsertOne(cctx, e)
		cancel()
		if err == nil {
			return
		}
		// The id is ours, so a duplicate means an earlier attempt landed
		// although its reply was lost.
		if isDuplicateKey(err) {
			return
		}
		if attempt < auditAttempts {
			_ = backoff(actx, attempt)
		}
	}
	s.log.Error("audit record not written; the change it records stands",
		zap.Error(err), zap.String("id", e.ID), zap.String("action", e.Action), zap.String("target", e.Target),
		zap.String("actor", e.Actor.Name), zap.Any("entry", e))
}

// compactSubjects drops empty and repeated subjects and sorts the rest. It
// never returns nil, which would be stored as null rather than [].
func compactSubjects(subjects []string) []string {
	out := slices.DeleteFunc(append([]string{}, subjects...), func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// auditID is the entry's time at microsecond precision, fixed width so that
// ids sort as times, and a random suffix for entries of the same
// microsecond.
func auditID(t time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return t.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b[:])
}

// AuditQuery selects audit entries. Zero fields do not filter.
type AuditQuery struct {
	ClassID string
	// Subjects keeps the entries concerning any of these subjects. A nil
	// slice does not filter; an empty one matches nothing.
	Subjects []string
	Actor    string
	Action   string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	// Before keeps the entries older than the entry with this id: the
	// cursor of the next page.
	Before string
	// Limit bounds the page; 0 means DefaultAuditLimit.
	Limit int
}

// Audit page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// ListAudit returns the entries q selects, newest first, and whether there
// are more past the last one (whose id is then the next page's Before).
func (s *Store) ListAudit(ctx context.Context, q AuditQuery) ([]api.AuditEntry, bool, error) {
	if q.Subjects != nil && len(q.Subjects) == 0 {
		return []api.AuditEntry{}, false, nil
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)

	filter := bson.D{}
	if q.ClassID != "" {
		filter = append(filter, bson.E{Key: "classId", Value: q.ClassID})
	}
	if q.Subjects != nil {
		filter = append(filter, bson.E{Key: "subjects", Value: bson.D{{Key: "$in", Value: q.Subjects}}})
	}
	if q.Actor != "" {
		filter = append(filter, bson.E{Key: "actor.name", Value: q.Actor})
	}
	if q.Action != "" {
		filter = append(filter, bson.E{Key: "action", Value: q.Action})
	}
	idRange := bson.D{}
	if q.Before != "" {
		idRange = append(idRange, bson.E{Key: "$lt", Value: q.Before})
	}
	if len(idRange) > 0 {
		filter = append(filter, bson.E{Key: "_id", Value: idRange})
	}
	timeRange := bson.D{}
	if !q.Since.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$gte", Value: q.Since})
	}
	if !q.Until.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$lt", Value: q.Until})
	}
	if len(timeRange) > 0 {
		filter = append(filter, bson.E{Key: "time", Value: timeRange})
	}

	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur, err := s.db.Collection(auditCollection).Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(int64(limit+1)))
	if err != nil {
		return nil, false, fmt.Errorf("list audit: %w", err)
	}
	entries := []api.AuditEntry{}
	if err := cur.All(ctx, &entries); err != nil {
		return nil, false, fmt.Errorf("list audit: %w", err)
	}
	more := len(entries) > limit
	if more {
		entries = entries[:limit]
	}
	return entries, more, nil
}
