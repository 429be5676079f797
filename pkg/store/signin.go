package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/signin"
)

const (
	settingsCollection = "settings"
	linksCollection    = "signin_links"
	sessionsCollection = "signin_sessions"
	signInSettingsID   = "signin"
)

// SignInSecrets are made once per installation and kept in the store, so
// that every apiserver and the controller share them without configuration.
type SignInSecrets struct {
	// ForwardAuth is the part of the sign-in check's address that only
	// Traefik knows (the controller writes it into Traefik's labels): a
	// sandbox that reaches the apiserver cannot use the check.
	ForwardAuth string `bson:"forwardAuth"`
	// Key signs link codes and session tokens (package signin).
	Key []byte `bson:"key"`
}

// SignInSecrets returns the installation's sign-in secrets, making them on
// first use. Concurrent first calls agree: the insert happens once.
func (s *Store) SignInSecrets(ctx context.Context) (SignInSecrets, error) {
	fa := make([]byte, 24)
	key := make([]byte, signin.KeyBytes)
	if _, err := rand.Read(fa); err != nil {
		return SignInSecrets{}, err
	}
	if _, err := rand.Read(key); err != nil {
		return SignInSecrets{}, err
	}
	var out SignInSecrets
	for attempt := 1; ; attempt++ {
		err := s.insertSecrets(ctx, hex.EncodeToString(fa), key, &out)
		if err == nil {
			break
		}
		if !isDuplicateKey(err) || attempt == maxAttempts {
			return out, fmt.Errorf("sign-in secrets: %w", err)
		}
	}
	if out.ForwardAuth == "" || len(out.Key) != signin.KeyBytes {
		return out, fmt.Errorf("sign-in secrets in the store are malformed")
	}
	// Links are looked up by the hash of their secret when followed.
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(linksCollection).Indexes().CreateOne(cctx,
		mongo.IndexModel{Keys: bson.D{{Key: "hash", Value: 1}}}); err != nil {
		return out, fmt.Errorf("index links: %w", err)
	}
	return out, nil
}

// insertSecrets reads the secrets into out, inserting fa and key first
// when there are none.
func (s *Store) insertSecrets(ctx context.Context, fa string, key []byte, out *SignInSecrets) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	return s.db.Collection(settingsCollection).FindOneAndUpdate(cctx,
		bson.D{{Key: "_id", Value: signInSettingsID}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "forwardAuth", Value: fa}, {Key: "key", Value: key}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
	).Decode(out)
}

// PutLink makes l the current link of its holder on its student's host,
// replacing (and so ending) the one before, and deletes the sessions made
// with earlier links. It is recorded in the audit trail by the caller, once
// for all the links of one request.
func (s *Store) PutLink(ctx context.Context, l api.SignInLink) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(linksCollection).ReplaceOne(cctx, bson.D{{Key: "_id", Value: l.ID}}, l,
		options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("write link %s: %w", l.ID, err)
	}
	if _, err := s.db.Collection(sessionsCollection).DeleteMany(cctx, bson.D{
		{Key: "classId", Value: l.ClassID}, {Key: "student", Value: l.Student},
		{Key: "holder", Value: l.Holder},
		{Key: "linkHash", Value: bson.D{{Key: "$ne", Value: l.Hash}}},
	}); err != nil {
		return fmt.Errorf("end the sessions of link %s: %w", l.ID, err)
	}
	return nil
}

// FindLink returns the link whose secret hashes to hash, or ErrNotFound.
func (s *Store) FindLink(ctx context.Context, hash string) (*api.SignInLink, error) {
	var l api.SignInLink
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := s.db.Collection(linksCollection).FindOne(cctx, bson.D{{Key: "hash", Value: hash}}).Decode(&l)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, fmt.Errorf("link: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("find link: %w", err)
	}
	return &l, nil
}

// GetLink returns the current link of holder on student's host, or
// ErrNotFound.
func (s *Store) GetLink(ctx context.Context, classID, student, holder string) (*api.SignInLink, error) {
	var l api.SignInLink
	if err := s.getDoc(ctx, linksCollection, api.LinkID(classID, student, holder), &l); err != nil {
		return nil, err
	}
	return &l, nil
}

// ListLinks returns the links issued on the hosts of class classID, in id
// order, whether they can still sign anyone in or not.
func (s *Store) ListLinks(ctx context.Context, classID string) ([]api.SignInLink, error) {
	return findAll[api.SignInLink](ctx, s.db.Collection(linksCollection), bson.D{{Key: "classId", Value: classID}})
}

// PutSession stores a new session.
func (s *Store) PutSession(ctx context.Context, sess api.SignInSession) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(sessionsCollection).InsertOne(cctx, sess); err != nil {
		return fmt.Errorf("write session: %w", err)
	}
	return nil
}

// GetSession returns the session whose cookie hashes to hash, or
// ErrNotFound.
func (s *Store) GetSession(ctx context.Context, hash string) (*api.SignInSession, error) {
	var sess api.SignInSession
	if err := s.getDoc(ctx, sessionsCollection, hash, &sess); err != nil {
		return nil, err
	}
	return &sess, nil
}

// DeleteSession ends one session (a sign-out).
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := s.db.Collection(sessionsCollection).DeleteOne(cctx, bson.D{{Key: "_id", Value: hash}}); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PruneSignIns deletes the links and sessions that can no longer sign
// anyone in: expired, of a class that is gone or not desired Up, of an
// earlier Up, or of a student no longer on the roster. FerretDB has no TTL
// indexes, so the apiserver calls this now and then; the sign-in check
// refuses all of them anyway, this only keeps the collections small.
func (s *Store) PruneSignIns(ctx context.Context, now time.Time) (int, error) {
	classes, err := s.List(ctx)
	if err != nil {
		return 0, err
	}
	byID := make(map[string]*api.Class, len(classes))
	for i := range classes {
		byID[classes[i].ID] = &classes[i]
	}
	live := func(classID, student string, upSince, expiresAt time.Time) bool {
		c := byID[classID]
		return c != nil && expiresAt.After(now) && c.DesiredPhase == api.PhaseUp && c.UpSince != nil &&
			c.UpSince.Equal(upSince) && slices.Contains(c.Spec.Students, student)
	}
	links, err := findAll[api.SignInLink](ctx, s.db.Collection(linksCollection), bson.D{})
	if err != nil {
		return 0, err
	}
	current := map[string]string{} // link id → hash
	var deadLinks bson.A
	for _, l := range links {
		if live(l.ClassID, l.Student, l.UpSince, l.ExpiresAt) {
			current[l.ID] = l.Hash
		} else {
			deadLinks = append(deadLinks, l.ID)
		}
	}
	sessions, err := findAll[api.SignInSession](ctx, s.db.Collection(sessionsCollection), bson.D{})
	if err != nil {
		return 0, err
	}
	var deadSessions bson.A
	for _, x := range sessions {
		if current[api.LinkID(x.ClassID, x.Student, x.Holder)] != x.LinkHash || !live(x.ClassID, x.Student, x.UpSince, x.ExpiresAt) {
			deadSessions = append(deadSessions, x.ID)
		}
	}
	n := 0
	for coll, ids := range map[string]bson.A{linksCollection: deadLinks, sessionsCollection: deadSessions} {
		if len(ids) == 0 {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		res, err := s.db.Collection(coll).DeleteMany(cctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		cancel()
		if err != nil {
			return n, fmt.Errorf("prune %s: %w", coll, err)
		}
		n += int(res.DeletedCount)
	}
	return n, nil
}

// RecordSandboxOpen adds to the audit trail that the actor of ctx signed in
// on a student's host to help.
func (s *Store) RecordSandboxOpen(ctx context.Context, c *api.Class, student string) {
	s.record(ctx, api.AuditEntry{Action: api.AuditSandboxOpen, Target: "class/" + c.ID + "/student/" + student,
		ClassID: c.ID, Subjects: []string{c.Spec.Subject}, To: &api.AuditState{Students: []string{student}}})
}

// RecordLinksIssued adds to the audit trail that the actor of ctx issued
// links on the hosts of students, for themselves when holder is set.
func (s *Store) RecordLinksIssued(ctx context.Context, c *api.Class, students []string, holder string, expiresAt time.Time) {
	e := api.AuditEntry{Action: api.AuditLinksIssue, Target: "class/" + c.ID, ClassID: c.ID,
		Subjects: []string{c.Spec.Subject}, To: &api.AuditState{Students: students, User: holder, ExpiresAt: &expiresAt}}
	s.record(ctx, e)
}
