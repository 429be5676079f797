package api

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"al"}, TTLSeconds: MaxTTLSeconds}
	if err := ok.Validate(); err != nil {
		t.Errorf("a year of TTL: %v", err)
	}
	over := ok
	over.TTLSeconds = MaxTTLSeconds + 1
	if err := over.Validate(); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("past a year: %v", err)
	}
	// The bound keeps the expiry from overflowing.
	up := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := Class{Spec: ok, DesiredPhase: PhaseUp, UpSince: &up}
	if exp := c.ExpiresAt(); exp == nil || !exp.After(up) {
		t.Errorf("ExpiresAt %v", exp)
	}

	for _, tc := range []struct {
		r   Roster
		err string
	}{
		{Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"al", "bo"}}, ""},
		{Roster{ClassID: "cs-a", Subject: "cs101"}, ""},
		{Roster{ClassID: "CS", Subject: "cs101"}, "class id"},
		{Roster{ClassID: "cs-a", Subject: "../x"}, "subject"},
		{Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"al", "al"}}, "twice"},
		{Roster{ClassID: "cs-a", Subject: "cs101", Students: []string{"élève"}}, "student"},
		{Roster{ClassID: "cs-a", Subject: "cs101", Students: make([]string, MaxStudents+1)}, "at most 500"},
	} {
		err := tc.r.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.err)
		}
	}

	for name, want := range map[string]bool{"ada": true, "admin": false, "controller": false, "system": false, "Ada": false, "": false} {
		if got := ValidateUserName(name) == nil; got != want {
			t.Errorf("ValidateUserName(%q) ok = %v", name, got)
		}
	}
	for r, want := range map[Role]bool{RoleAdmin: true, RoleTeacher: true, RoleController: false, RoleSystem: false, "": false} {
		if got := ValidateRole(r) == nil; got != want {
			t.Errorf("ValidateRole(%q) ok = %v", r, got)
		}
	}
}

func TestMarshalEmptyLists(t *testing.T) {
	for _, v := range []interface{ MarshalJSON() ([]byte, error) }{User{Name: "a"}, Subject{ID: "s"}} {
		b, err := v.MarshalJSON()
		if err != nil || !strings.Contains(string(b), ":[]") {
			t.Errorf("%s %v", b, err)
		}
	}
}
