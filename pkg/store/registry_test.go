package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()

	subj, ch, err := s.PutSubject(ctx, "cs101", "Intro to CS")
	if err != nil || ch != store.Created || subj.ID != "cs101" || subj.Title != "Intro to CS" || subj.CreatedAt.IsZero() {
		t.Fatalf("PutSubject = %+v, %v, %v", subj, ch, err)
	}
	if _, ch, err := s.PutSubject(ctx, "cs101", "Intro to CS"); err != nil || ch != store.Unchanged {
		t.Errorf("same title again: %v, %v", ch, err)
	}
	if got, ch, err := s.PutSubject(ctx, "cs101", "Computing I"); err != nil || ch != store.Updated || got.Title != "Computing I" || !got.CreatedAt.Equal(subj.CreatedAt) {
		t.Errorf("new title: %+v %v %v", got, ch, err)
	}
	if _, _, err := s.PutSubject(ctx, "math", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutUser(ctx, "ada", api.RoleTeacher, []string{"cs101"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutUser(ctx, "root", api.RoleAdmin, []string{"cs101"}); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListSubjects(ctx, nil)
	if err != nil || len(list) != 2 || list[0].ID != "cs101" || !slices.Equal(list[0].Teachers, []string{"ada"}) || list[1].ID != "math" || len(list[1].Teachers) != 0 {
		t.Errorf("ListSubjects = %+v, %v; want cs101 taught by ada (admins are not teachers), then math", list, err)
	}
	if only, err := s.ListSubjects(ctx, []string{"math", "nope"}); err != nil || len(only) != 1 || only[0].ID != "math" {
		t.Errorf("ListSubjects(math, nope) = %+v, %v", only, err)
	}
	if only, err := s.ListSubjects(ctx, []string{}); err != nil || len(only) != 0 {
		t.Errorf("ListSubjects(none) = %+v, %v", only, err)
	}

	// In use by a user, then by a roster: not deleted.
	if err := s.DeleteSubject(ctx, "cs101"); !errors.Is(err, store.ErrInUse) {
		t.Errorf("delete a subject a teacher has: %v, want ErrInUse", err)
	}
	if _, _, err := s.PutRoster(ctx, api.Roster{ClassID: "m-a", Subject: "math", Students: []string{"al"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubject(ctx, "math"); !errors.Is(err, store.ErrInUse) {
		t.Errorf("delete a subject a roster names: %v, want ErrInUse", err)
	}
	if err := s.DeleteRoster(ctx, "m-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubject(ctx, "math"); err != nil {
		t.Errorf("delete an unused subject: %v", err)
	}
	if _, err := s.GetSubject(ctx, "math"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleted subject: %v", err)
	}
	if err := s.DeleteSubject(ctx, "math"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestRosters(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()

	_, _, err := s.PutRoster(ctx, api.Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"bob", "al"}})
	var ue *store.UnknownSubjectsError
	if !errors.Is(err, store.ErrUnknownSubject) || !errors.As(err, &ue) || !slices.Equal(ue.Subjects, []string{"cs101"}) {
		t.Fatalf("roster of an unregistered subject: %v", err)
	}
	for _, id := range []string{"cs101", "bio"} {
		if _, _, err := s.PutSubject(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	r, ch, err := s.PutRoster(ctx, api.Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"bob", "al"}})
	if err != nil || ch != store.Created || !slices.Equal(r.Students, []string{"al", "bob"}) {
		t.Fatalf("PutRoster = %+v %v %v; want created, students sorted", r, ch, err)
	}
	if _, ch, err := s.PutRoster(ctx, api.Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"al", "bob"}}); err != nil || ch != store.Unchanged {
		t.Errorf("same roster in another order: %v %v", ch, err)
	}
	if r, ch, err := s.PutRoster(ctx, api.Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"al"}}); err != nil || ch != store.Updated || !slices.Equal(r.Students, []string{"al"}) {
		t.Errorf("smaller roster: %+v %v %v", r, ch, err)
	}
	if r, _, err := s.PutRoster(ctx, api.Roster{ClassID: "empty", Subject: "bio"}); err != nil || r.Students == nil || len(r.Students) != 0 {
		t.Errorf("empty roster: %+v %v", r, err)
	}
	got, err := s.GetRoster(ctx, "cs-a")
	if err != nil || got.Subject != "cs101" || !slices.Equal(got.Students, []string{"al"}) {
		t.Errorf("GetRoster = %+v %v", got, err)
	}
	if _, err := s.GetRoster(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRoster of an unregistered class: %v", err)
	}
	all, err := s.ListRosters(ctx, nil)
	if err != nil || len(all) != 2 || all[0].ClassID != "cs-a" || all[1].ClassID != "empty" {
		t.Errorf("ListRosters = %+v %v", all, err)
	}
	if bio, err := s.ListRosters(ctx, []string{"bio"}); err != nil || len(bio) != 1 || bio[0].ClassID != "empty" {
		t.Errorf("ListRosters(bio) = %+v %v", bio, err)
	}
}

func TestUsersAndGrants(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()
	for _, id := range []string{"cs101", "bio", "math"} {
		if _, _, err := s.PutSubject(ctx, id, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.PutUser(ctx, "ada", api.RoleTeacher, []string{"cs101", "art", "zoo"}); !errors.Is(err, store.ErrUnknownSubject) {
		t.Fatalf("user with unregistered subjects: %v", err)
	}
	if _, err := s.GetUser(ctx, "ada"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused user was written: %v", err)
	}
	u, ch, err := s.PutUser(ctx, "ada", api.RoleTeacher, []string{"math", "cs101", "math"})
	if err != nil || ch != store.Created || u.Role != api.RoleTeacher || !slices.Equal(u.Subjects, []string{"cs101", "math"}) {
		t.Fatalf("PutUser = %+v %v %v", u, ch, err)
	}
	if _, ch, _ := s.PutUser(ctx, "ada", api.RoleTeacher, []string{"cs101", "math"}); ch != store.Unchanged {
		t.Errorf("same user again: %v", ch)
	}

	// Grants from many writers at once all land.
	var wg sync.WaitGroup
	for _, subj := range []string{"bio", "bio", "cs101", "bio"} {
		wg.Go(func() {
			if _, _, err := s.GrantSubject(ctx, "ada", subj); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if u, _ := s.GetUser(ctx, "ada"); !slices.Equal(u.Subjects, []string{"bio", "cs101", "math"}) {
		t.Errorf("after grants: %v", u.Subjects)
	}
	if _, ch, err := s.GrantSubject(ctx, "ada", "bio"); err != nil || ch != store.Unchanged {
		t.Errorf("grant again: %v %v", ch, err)
	}
	if _, _, err := s.GrantSubject(ctx, "ada", "art"); !errors.Is(err, store.ErrUnknownSubject) {
		t.Errorf("grant of an unregistered subject: %v", err)
	}
	if _, _, err := s.GrantSubject(ctx, "nobody", "bio"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("grant to nobody: %v", err)
	}
	if u, ch, err := s.RevokeSubject(ctx, "ada", "math"); err != nil || ch != store.Updated || !slices.Equal(u.Subjects, []string{"bio", "cs101"}) {
		t.Errorf("revoke: %+v %v %v", u, ch, err)
	}
	if _, ch, err := s.RevokeSubject(ctx, "ada", "math"); err != nil || ch != store.Unchanged {
		t.Errorf("revoke again: %v %v", ch, err)
	}

	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 1 || users[0].Name != "ada" {
		t.Errorf("ListUsers = %+v %v", users, err)
	}
	if err := s.DeleteUser(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "ada"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	uri, db := testenv.StoreURI(t)
	s := testenv.OpenStore(t, uri, db)
	ctx := t.Context()
	if _, _, err := s.IssueToken(ctx, "ada", "", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token for nobody: %v", err)
	}
	if _, _, err := s.PutUser(ctx, "ada", api.RoleTeacher, nil); err != nil {
		t.Fatal(err)
	}
	secret, tok, err := s.IssueToken(ctx, "ada", "laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	if store.TokenID(secret) != tok.ID || tok.User != "ada" || tok.Description != "laptop" || tok.CreatedBy != api.SystemActor {
		t.Errorf("issued %q %+v", secret, tok)
	}
	u, got, err := s.Authenticate(ctx, secret)
	if err != nil || u.Name != "ada" || got.ID != tok.ID {
		t.Fatalf("Authenticate = %+v %+v %v", u, got, err)
	}

	// Neither the token nor its secret part is stored anywhere, in any
	// collection; its hash is.
	secretPart := secret[len(secret)-43:]
	if dump := dumpDatabase(t, uri, db); bytes.Contains(dump, []byte(secretPart)) || !bytes.Contains(dump, []byte(sha256hex(secret))) {
		t.Errorf("the token's secret is stored in clear, or its hash is not stored")
	}

	// Tampering with any part fails.
	for _, bad := range []string{
		"", "hrt_", secret[:len(secret)-1], secret + "x", secret[:len(secret)-1] + flip(secret[len(secret)-1]),
		"hrt_" + tok.ID + "_" + secret[len("hrt_")+len(tok.ID)+1:len(secret)-2] + "AA",
		replaceByte(secret, 4, 'A'),
	} {
		if _, _, err := s.Authenticate(ctx, bad); !errors.Is(err, store.ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnauthenticated", bad, err)
		}
	}

	// Revoked: at once.
	revoked, err := s.RevokeToken(ctx, tok.ID)
	if err != nil || revoked.RevokedAt == nil || revoked.RevokedBy != api.SystemActor {
		t.Fatalf("RevokeToken = %+v %v", revoked, err)
	}
	if _, _, err := s.Authenticate(ctx, secret); !errors.Is(err, store.ErrUnauthenticated) {
		t.Errorf("a revoked token authenticates: %v", err)
	}
	if again, err := s.RevokeToken(ctx, tok.ID); err != nil || !again.RevokedAt.Equal(*revoked.RevokedAt) {
		t.Errorf("revoke twice: %+v %v", again, err)
	}
	if _, err := s.RevokeToken(ctx, "0123456789abcdef"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}

	// Expired: by the filter.
	past := time.Now().Add(-time.Second)
	expired, _, err := s.IssueToken(ctx, "ada", "", &past)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate(ctx, expired); !errors.Is(err, store.ErrUnauthenticated) {
		t.Errorf("an expired token authenticates: %v", err)
	}
	future := time.Now().Add(time.Hour)
	live, _, err := s.IssueToken(ctx, "ada", "", &future)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate(ctx, live); err != nil {
		t.Errorf("a token expiring in an hour: %v", err)
	}

	toks, err := s.ListTokens(ctx, "ada")
	if err != nil || len(toks) != 3 || toks[0].ID != tok.ID || toks[0].RevokedAt == nil {
		t.Errorf("ListTokens = %+v %v", toks, err)
	}

	// Deleting the user revokes its tokens, so that a user created again
	// under the name does not inherit them.
	if err := s.DeleteUser(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutUser(ctx, "ada", api.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Authenticate(ctx, live); !errors.Is(err, store.ErrUnauthenticated) {
		t.Errorf("a deleted user's token works for the new user: %v", err)
	}
}

func flip(b byte) string {
	if b == 'A' {
		return "B"
	}
	return "A"
}

// replaceByte returns s with byte i replaced by c.
func replaceByte(s string, i int, c byte) string {
	b := []byte(s)
	b[i] = c
	return string(b)
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// dumpDatabase returns every document of every collection of database, as
// raw BSON, through a client of its own.
func dumpDatabase(t *testing.T, uri, database string) []byte {
	t.Helper()
	ctx := t.Context()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(database)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var dump []byte
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			dump = append(dump, cur.Current...)
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return dump
}
