package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/homeroom/homeroom/pkg/api"
)

// The school's records and who may call the API. Each record is one document
// written with a single findAndModify, which the server applies atomically
// (the embedded FerretDB through its write-serializing proxy), so these need
// no version of their own.
const (
	subjectsCollection = "subjects"
	rostersCollection  = "rosters"
	usersCollection    = "users"
)

// ErrUnknownSubject means a record names a subject that is not registered.
// It is wrapped in an *UnknownSubjectsError naming them.
var ErrUnknownSubject = errors.New("unknown subject")

// UnknownSubjectsError names the subjects that are not registered.
type UnknownSubjectsError struct{ Subjects []string }

func (e *UnknownSubjectsError) Error() string {
	if len(e.Subjects) == 1 {
		return fmt.Sprintf("subject %q is not registered", e.Subjects[0])
	}
	return fmt.Sprintf("subjects %s are not registered", strings.Join(e.Subjects, ", "))
}

// Is makes errors.Is(err, ErrUnknownSubject) hold.
func (e *UnknownSubjectsError) Is(target error) bool { return target == ErrUnknownSubject }

// ErrInUse means a record cannot be deleted while others refer to it.
var ErrInUse = errors.New("in use")

// Change says what a write of a record did.
type Change int

const (
	Unchanged Change = iota
	Created
	Updated
)

func (c Change) String() string {
	switch c {
	case Created:
		return "created"
	case Updated:
		return "updated"
	}
	return "unchanged"
}

// upsert writes set into the document with id, creating it (with createdAt)
// if missing, and returns the document as it was before, or nil. A filter
// mismatch after a concurrent insert of the same id surfaces as a duplicate
// key error and is retried as an update.
func (s *Store) upsert(ctx context.Context, coll, id string, set bson.D) (bson.Raw, error) {
	t := now()
	set = append(set, bson.E{Key: "updatedAt", Value: t})
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		raw, err := s.db.Collection(coll).FindOneAndUpdate(cctx,
			bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$set", Value: set}, {Key: "$setOnInsert", Value: bson.D{{Key: "createdAt", Value: t}}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before),
		).Raw()
		cancel()
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil
		}
		if err == nil {
			return raw, nil
		}
		if !isDuplicateKey(err) || attempt == maxAttempts {
			return nil, fmt.Errorf("write %s %q: %w", strings.TrimSuffix(coll, "s"), id, err)
		}
	}
}

// getDoc decodes the document with id into v, or returns ErrNotFound.
func (s *Store) getDoc(ctx context.Context, coll, id string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := s.db.Collection(coll).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(v)
	kind := strings.TrimSuffix(coll, "s")
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("get %s %q: %w", kind, id, err)
	}
	return nil
}

// findAll decodes every document filter selects, in _id order, into out.
func findAll[T any](ctx context.Context, coll *mongo.Collection, filter bson.D) ([]T, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	cur, err := coll.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", coll.Name(), err)
	}
	out := []T{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list %s: %w", coll.Name(), err)
	}
	return out, nil
}

// deleteDoc deletes the document with id and returns it as it was.
func (s *Store) deleteDoc(ctx context.Context, coll, id string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := s.db.Collection(coll).FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id}}).Decode(v)
	kind := strings.TrimSuffix(coll, "s")
	if errors.Is(err, mongo.ErrNoDocuments) {
		return fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, id, err)
	}
	return nil
}

// count returns how many documents filter selects.
func (s *Store) count(ctx context.Context, coll string, filter bson.D) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	n, err := s.db.Collection(coll).CountDocuments(ctx, filter)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", coll, err)
	}
	return n, nil
}

// --- subjects ---

// PutSubject registers a subject or changes its title.
func (s *Store) PutSubject(ctx context.Context, id, title string) (*api.Subject, Change, error) {
	raw, err := s.upsert(ctx, subjectsCollection, id, bson.D{{Key: "title", Value: title}})
	if err != nil {
		return nil, Unchanged, err
	}
	subj, err := s.GetSubject(ctx, id)
	if err != nil {
		return nil, Unchanged, err
	}
	if raw == nil {
		s.record(ctx, api.AuditEntry{Action: api.AuditSubjectCreate, Target: "subject/" + id, Subjects: []string{id},
			To: &api.AuditState{Title: title}})
		return subj, Created, nil
	}
	var old api.Subject
	if err := bson.Unmarshal(raw, &old); err != nil {
		return nil, Unchanged, fmt.Errorf("decode subject: %w", err)
	}
	if old.Title == title {
		return subj, Unchanged, nil
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditSubjectUpdate, Target: "subject/" + id, Subjects: []string{id},
		From: &api.AuditState{Title: old.Title}, To: &api.AuditState{Title: title}})
	return subj, Updated, nil
}

// GetSubject returns a registered subject with its teachers.
func (s *Store) GetSubject(ctx context.Context, id string) (*api.Subject, error) {
	var subj api.Subject
	if err := s.getDoc(ctx, subjectsCollection, id, &subj); err != nil {
		return nil, err
	}
	teachers, err := s.teachersOf(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	subj.Teachers = teachers[id]
	return &subj, nil
}

// ListSubjects returns the registered subjects with their teachers, by id;
// with only non-nil, the subjects among only.
func (s *Store) ListSubjects(ctx context.Context, only []string) ([]api.Subject, error) {
	filter := bson.D{}
	if only != nil {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: only}}}}
	}
	subjects, err := findAll[api.Subject](ctx, s.db.Collection(subjectsCollection), filter)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(subjects))
	for i := range subjects {
		ids[i] = subjects[i].ID
	}
	teachers, err := s.teachersOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	for i := range subjects {
		subjects[i].Teachers = teachers[subjects[i].ID]
	}
	return subjects, nil
}

// teachersOf maps each of subjects to the teachers granted it, by name.
func (s *Store) teachersOf(ctx context.Context, subjects []string) (map[string][]string, error) {
	users, err := findAll[api.User](ctx, s.db.Collection(usersCollection), bson.D{{Key: "role", Value: api.RoleTeacher}})
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(subjects))
	for _, u := range users {
		for _, subj := range u.Subjects {
			if slices.Contains(subjects, subj) {
				out[subj] = append(out[subj], u.Name)
			}
		}
	}
	return out, nil
}

// DeleteSubject removes a subject that no roster and no user refers to;
// otherwise it returns ErrInUse saying what refers to it.
func (s *Store) DeleteSubject(ctx context.Context, id string) error {
	rosters, err := s.count(ctx, rostersCollection, bson.D{{Key: "subject", Value: id}})
	if err != nil {
		return err
	}
	users, err := s.count(ctx, usersCollection, bson.D{{Key: "subjects", Value: id}})
	if err != nil {
		return err
	}
	if rosters > 0 || users > 0 {
		return fmt.Errorf("subject %q has %d registered classes and %d users: %w", id, rosters, users, ErrInUse)
	}
	var old api.Subject
	if err := s.deleteDoc(ctx, subjectsCollection, id, &old); err != nil {
		return err
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditSubjectDelete, Target: "subject/" + id, Subjects: []string{id},
		From: &api.AuditState{Title: old.Title}})
	return nil
}

// checkSubjects returns an *UnknownSubjectsError naming those of subjects
// that are not registered.
func (s *Store) checkSubjects(ctx context.Context, subjects []string) error {
	if len(subjects) == 0 {
		return nil
	}
	known, err := findAll[api.Subject](ctx, s.db.Collection(subjectsCollection),
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: subjects}}}})
	if err != nil {
		return err
	}
	var missing []string
	for _, subj := range subjects {
		if !slices.ContainsFunc(known, func(k api.Subject) bool { return k.ID == subj }) && !slices.Contains(missing, subj) {
			missing = append(missing, subj)
		}
	}
	if len(missing) > 0 {
		return &UnknownSubjectsError{Subjects: missing}
	}
	return nil
}

// --- rosters ---

// PutRoster registers a class with its subject and official roster, or
// replaces them. The subject must be registered. Students are kept sorted:
// a roster is a set, and re-sending it in another order is no change.
func (s *Store) PutRoster(ctx context.Context, r api.Roster) (*api.Roster, Change, error) {
	if err := s.checkSubjects(ctx, []string{r.Subject}); err != nil {
		return nil, Unchanged, err
	}
	students := slices.Clone(r.Students)
	if students == nil {
		students = []string{}
	}
	slices.Sort(students)
	raw, err := s.upsert(ctx, rostersCollection, r.ClassID, bson.D{
		{Key: "subject", Value: r.Subject}, {Key: "students", Value: students},
	})
	if err != nil {
		return nil, Unchanged, err
	}
	cur, err := s.GetRoster(ctx, r.ClassID)
	if err != nil {
		return nil, Unchanged, err
	}
	to := &api.AuditState{Subject: cur.Subject, Students: cur.Students}
	if raw == nil {
		s.record(ctx, api.AuditEntry{Action: api.AuditRosterCreate, Target: "roster/" + r.ClassID, ClassID: r.ClassID,
			Subjects: []string{cur.Subject}, To: to})
		return cur, Created, nil
	}
	var old api.Roster
	if err := bson.Unmarshal(raw, &old); err != nil {
		return nil, Unchanged, fmt.Errorf("decode roster: %w", err)
	}
	if old.Subject == cur.Subject && slices.Equal(old.Students, cur.Students) {
		return cur, Unchanged, nil
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditRosterUpdate, Target: "roster/" + r.ClassID, ClassID: r.ClassID,
		Subjects: []string{old.Subject, cur.Subject}, From: &api.AuditState{Subject: old.Subject, Students: old.Students}, To: to})
	return cur, Updated, nil
}

// GetRoster returns the registration of a class, or ErrNotFound when it is
// not registered.
func (s *Store) GetRoster(ctx context.Context, classID string) (*api.Roster, error) {
	var r api.Roster
	if err := s.getDoc(ctx, rostersCollection, classID, &r); err != nil {
		return nil, err
	}
	if r.Students == nil {
		r.Students = []string{}
	}
	return &r, nil
}

// ListRosters returns the registered classes by id; with subjects non-nil,
// those of these subjects only.
func (s *Store) ListRosters(ctx context.Context, subjects []string) ([]api.Roster, error) {
	filter := bson.D{}
	if subjects != nil {
		filter = bson.D{{Key: "subject", Value: bson.D{{Key: "$in", Value: subjects}}}}
	}
	rs, err := findAll[api.Roster](ctx, s.db.Collection(rostersCollection), filter)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i].Students == nil {
			rs[i].Students = []string{}
		}
	}
	return rs, nil
}

// DeleteRoster unregisters a class. The class itself, if it exists, is left
// as it is; a teacher can no longer bring it Up.
func (s *Store) DeleteRoster(ctx context.Context, classID string) error {
	var old api.Roster
	if err := s.deleteDoc(ctx, rostersCollection, classID, &old); err != nil {
		return err
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditRosterDelete, Target: "roster/" + classID, ClassID: classID,
		Subjects: []string{old.Subject}, From: &api.AuditState{Subject: old.Subject, Students: old.Students}})
	return nil
}

// --- users ---

// PutUser creates a user or replaces its role and subjects, which must all
// be registered.
func (s *Store) PutUser(ctx context.Context, name string, role api.Role, subjects []string) (*api.User, Change, error) {
	subjects = compactSubjects(subjects)
	if err := s.checkSubjects(ctx, subjects); err != nil {
		return nil, Unchanged, err
	}
	raw, err := s.upsert(ctx, usersCollection, name, bson.D{{Key: "role", Value: role}, {Key: "subjects", Value: subjects}})
	if err != nil {
		return nil, Unchanged, err
	}
	return s.userWritten(ctx, name, raw)
}

// userWritten reads the user back after a write and records the change
// from old (nil: created).
func (s *Store) userWritten(ctx context.Context, name string, raw bson.Raw) (*api.User, Change, error) {
	u, err := s.GetUser(ctx, name)
	if err != nil {
		return nil, Unchanged, err
	}
	to := &api.AuditState{Role: u.Role, Subjects: u.Subjects}
	if raw == nil {
		s.record(ctx, api.AuditEntry{Action: api.AuditUserCreate, Target: "user/" + name, To: to})
		return u, Created, nil
	}
	var old api.User
	if err := bson.Unmarshal(raw, &old); err != nil {
		return nil, Unchanged, fmt.Errorf("decode user: %w", err)
	}
	old.Subjects = compactSubjects(old.Subjects)
	if old.Role == u.Role && slices.Equal(old.Subjects, u.Subjects) {
		return u, Unchanged, nil
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditUserUpdate, Target: "user/" + name,
		From: &api.AuditState{Role: old.Role, Subjects: old.Subjects}, To: to})
	return u, Updated, nil
}

// GrantSubject adds a registered subject to a user's subjects.
func (s *Store) GrantSubject(ctx context.Context, name, subject string) (*api.User, Change, error) {
	if err := s.checkSubjects(ctx, []string{subject}); err != nil {
		return nil, Unchanged, err
	}
	return s.changeSubjects(ctx, name,
		bson.D{{Key: "subjects", Value: bson.D{{Key: "$ne", Value: subject}}}},
		bson.E{Key: "$addToSet", Value: bson.D{{Key: "subjects", Value: subject}}})
}

// RevokeSubject removes a subject from a user's subjects.
func (s *Store) RevokeSubject(ctx context.Context, name, subject string) (*api.User, Change, error) {
	return s.changeSubjects(ctx, name,
		bson.D{{Key: "subjects", Value: subject}},
		bson.E{Key: "$pull", Value: bson.D{{Key: "subjects", Value: subject}}})
}

// changeSubjects applies op to the user if cond holds, in one atomic write,
// so that two grants at once both land. When cond does not hold there is
// nothing to do, or no such user.
func (s *Store) changeSubjects(ctx context.Context, name string, cond bson.D, op bson.E) (*api.User, Change, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	raw, err := s.db.Collection(usersCollection).FindOneAndUpdate(cctx,
		append(bson.D{{Key: "_id", Value: name}}, cond...),
		bson.D{op, {Key: "$set", Value: bson.D{{Key: "updatedAt", Value: now()}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before),
	).Raw()
	cancel()
	if errors.Is(err, mongo.ErrNoDocuments) {
		u, err := s.GetUser(ctx, name)
		return u, Unchanged, err
	}
	if err != nil {
		return nil, Unchanged, fmt.Errorf("write user %q: %w", name, err)
	}
	return s.userWritten(ctx, name, raw)
}

// GetUser returns a user, or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, name string) (*api.User, error) {
	var u api.User
	if err := s.getDoc(ctx, usersCollection, name, &u); err != nil {
		return nil, err
	}
	// Grants append; a user's subjects are a set, shown sorted.
	u.Subjects = compactSubjects(u.Subjects)
	return &u, nil
}

// ListUsers returns every user by name.
func (s *Store) ListUsers(ctx context.Context) ([]api.User, error) {
	users, err := findAll[api.User](ctx, s.db.Collection(usersCollection), bson.D{})
	for i := range users {
		users[i].Subjects = compactSubjects(users[i].Subjects)
	}
	return users, err
}

// DeleteUser revokes every token of a user, then removes it. Its tokens
// would stop working anyway, since a token works only for a user that
// exists; revoking them keeps a user created again under the same name from
// inheriting them.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	if _, err := s.GetUser(ctx, name); err != nil {
		return err
	}
	if err := s.revokeTokensOf(ctx, name); err != nil {
		return err
	}
	var old api.User
	if err := s.deleteDoc(ctx, usersCollection, name, &old); err != nil {
		return err
	}
	s.record(ctx, api.AuditEntry{Action: api.AuditUserDelete, Target: "user/" + name,
		From: &api.AuditState{Role: old.Role, Subjects: old.Subjects}})
	return nil
}
