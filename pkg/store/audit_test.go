package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// trail lists every entry oldest first, as "actor action target from→to",
// with the phases and rosters that changed.
func trail(t *testing.T, s *store.Store, q store.AuditQuery) []string {
	t.Helper()
	q.Limit = store.MaxAuditLimit
	entries, more, err := s.ListAudit(t.Context(), q)
	if err != nil || more {
		t.Fatalf("ListAudit = %v, more %v", err, more)
	}
	var out []string
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		out = append(out, fmt.Sprintf("%s/%s %s %s %s→%s", e.Actor.Name, e.Actor.Role, e.Action, e.Target, side(e.From), side(e.To)))
	}
	return out
}

func side(st *api.AuditState) string {
	if st == nil {
		return "-"
	}
	var parts []string
	if st.Spec != nil {
		parts = append(parts, fmt.Sprintf("%s:%s", st.Spec.Subject, strings.Join(st.Spec.Students, "+")))
	}
	if st.DesiredPhase != "" {
		parts = append(parts, string(st.DesiredPhase))
	}
	if st.DownReason != "" {
		parts = append(parts, st.DownReason)
	}
	if st.Generation != 0 {
		parts = append(parts, fmt.Sprint("g", st.Generation))
	}
	return strings.Join(parts, ",")
}

func TestAuditOfClassChanges(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	teacher := store.WithActor(t.Context(), api.Actor{Name: "ada", Role: api.RoleTeacher, TokenID: "0011223344556677",
		RequestID: "req-1", Via: "PUT /api/v1/classes/c"})

	sp := api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"al"}, TTLSeconds: 60}
	if _, _, err := s.PutSpec(teacher, "c", sp); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutSpec(teacher, "c", sp); err != nil { // no change, no entry
		t.Fatal(err)
	}
	sp.Students = []string{"al", "bo"}
	if _, _, err := s.PutSpec(teacher, "c", sp); err != nil {
		t.Fatal(err)
	}
	up, err := s.SetDesiredPhase(teacher, "c", api.PhaseUp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetDesiredPhase(teacher, "c", api.PhaseUp); err != nil { // no change
		t.Fatal(err)
	}
	// The controller's context carries no actor; Expire says who it is.
	if _, err := s.Expire(context.Background(), "c", *up.UpSince); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatus(context.Background(), "c", up.Version+1, api.ClassStatus{Phase: api.PhaseDown}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(teacher, "c", nil); err != nil {
		t.Fatal(err)
	}
	// A write without an actor is the system's.
	if _, _, err := s.PutSpec(context.Background(), "d", sp); err != nil {
		t.Fatal(err)
	}

	got := trail(t, s, store.AuditQuery{})
	want := []string{
		"ada/teacher class.create class/c -→cs:al,Down,g1",
		"ada/teacher class.update class/c cs:al,Down,g1→cs:al+bo,Down,g2",
		"ada/teacher class.up class/c cs:al+bo,Down,g2→cs:al+bo,Up,g3",
		"controller/controller class.expire class/c cs:al+bo,Up,g3→cs:al+bo,Down,TTLExpired,g4",
		"ada/teacher class.delete class/c cs:al+bo,Down,TTLExpired,g4→-",
		"system/system class.create class/d -→cs:al+bo,Down,g1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("trail:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	entries, _, _ := s.ListAudit(t.Context(), store.AuditQuery{Limit: 1})
	if e := entries[0]; e.ClassID != "d" || !slices.Equal(e.Subjects, []string{"cs"}) || e.Time.IsZero() {
		t.Errorf("newest entry %+v", e)
	}
	entries, _, _ = s.ListAudit(t.Context(), store.AuditQuery{Action: api.AuditClassUp})
	if len(entries) != 1 || entries[0].Actor != (api.Actor{Name: "ada", Role: api.RoleTeacher, TokenID: "0011223344556677", RequestID: "req-1", Via: "PUT /api/v1/classes/c"}) {
		t.Errorf("the Up's actor: %+v", entries)
	}
}

func TestAuditQuery(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := t.Context()
	as := func(name string) context.Context {
		return store.WithActor(ctx, api.Actor{Name: name, Role: api.RoleTeacher})
	}
	put := func(actor, id, subject string) {
		t.Helper()
		if _, _, err := s.PutSpec(as(actor), id, api.ClassSpec{Subject: subject, Template: "t", Students: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
	}
	put("ada", "a1", "cs")
	put("ada", "a2", "cs")
	put("bob", "b1", "bio")
	// BSON keeps milliseconds: keep mid clear of the entries around it.
	time.Sleep(5 * time.Millisecond)
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	put("bob", "b2", "bio")
	// A class moved from cs to math concerns both.
	put("ada", "a1", "math")

	ids := func(q store.AuditQuery) string {
		t.Helper()
		es, _, err := s.ListAudit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.ClassID)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		desc string
		q    store.AuditQuery
		want string
	}{
		{"all, newest first", store.AuditQuery{}, "a1 b2 b1 a2 a1"},
		{"by class", store.AuditQuery{ClassID: "a1"}, "a1 a1"},
		{"by subject", store.AuditQuery{Subjects: []string{"cs"}}, "a1 a2 a1"},
		{"by subjects", store.AuditQuery{Subjects: []string{"math", "bio"}}, "a1 b2 b1"},
		{"no subjects", store.AuditQuery{Subjects: []string{}}, ""},
		{"by actor", store.AuditQuery{Actor: "bob"}, "b2 b1"},
		{"by action", store.AuditQuery{Action: api.AuditClassUpdate}, "a1"},
		{"since", store.AuditQuery{Since: mid}, "a1 b2"},
		{"until", store.AuditQuery{Until: mid}, "b1 a2 a1"},
		{"limit", store.AuditQuery{Limit: 2}, "a1 b2"},
		{"combined", store.AuditQuery{Subjects: []string{"bio"}, Actor: "bob", Since: mid}, "b2"},
	} {
		if got := ids(tc.q); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.desc, got, tc.want)
		}
	}

	// Paging with Before walks every entry once.
	var seen []string
	before := ""
	for {
		page, more, err := s.ListAudit(ctx, store.AuditQuery{Limit: 2, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			seen = append(seen, e.ClassID)
		}
		if !more {
			break
		}
		before = page[len(page)-1].ID
	}
	if strings.Join(seen, " ") != "a1 b2 b1 a2 a1" {
		t.Errorf("paged: %v", seen)
	}
}

func TestAuditOfRegistryChanges(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := store.WithActor(t.Context(), api.Actor{Name: "root", Role: api.RoleAdmin})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := s.PutSubject(ctx, "cs", "CS")
	must(err)
	_, _, err = s.PutRoster(ctx, api.Roster{ClassID: "c", Subject: "cs", Students: []string{"al"}})
	must(err)
	_, _, err = s.PutRoster(ctx, api.Roster{ClassID: "c", Subject: "cs", Students: []string{"al", "bo"}})
	must(err)
	_, _, err = s.PutUser(ctx, "ada", api.RoleTeacher, nil)
	must(err)
	_, _, err = s.GrantSubject(ctx, "ada", "cs")
	must(err)
	_, tok, err := s.IssueToken(ctx, "ada", "", nil)
	must(err)
	must(s.DeleteUser(ctx, "ada"))
	must(s.DeleteRoster(ctx, "c"))

	es, _, err := s.ListAudit(ctx, store.AuditQuery{})
	must(err)
	var got []string
	for i := len(es) - 1; i >= 0; i-- {
		e := es[i]
		if e.Actor.Name != "root" {
			t.Errorf("%s by %+v", e.Action, e.Actor)
		}
		got = append(got, e.Action+" "+e.Target+" "+strings.Join(e.Subjects, ","))
	}
	want := []string{
		"subject.create subject/cs cs",
		"roster.create roster/c cs",
		"roster.update roster/c cs",
		"user.create user/ada ",
		"user.update user/ada ",
		"token.issue token/" + tok.ID + " ",
		"token.revoke token/" + tok.ID + " ",
		"user.delete user/ada ",
		"roster.delete roster/c cs",
	}
	if !slices.Equal(got, want) {
		t.Errorf("trail:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// from→to of the grant and the roster change.
	for _, e := range es {
		switch e.Action {
		case api.AuditUserUpdate:
			if e.From == nil || len(e.From.Subjects) != 0 || e.To == nil || !slices.Equal(e.To.Subjects, []string{"cs"}) {
				t.Errorf("grant recorded as %+v → %+v", e.From, e.To)
			}
		case api.AuditRosterUpdate:
			if !slices.Equal(e.From.Students, []string{"al"}) || !slices.Equal(e.To.Students, []string{"al", "bo"}) {
				t.Errorf("roster change recorded as %+v → %+v", e.From, e.To)
			}
		}
	}
}
