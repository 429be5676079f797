package api

import (
	"fmt"
	"regexp"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// MaxStudents bounds a roster before any policy applies, so that a single
// request cannot make the controller create an unbounded number of containers.
const MaxStudents = 500

// MaxTTLSeconds bounds ttlSeconds to a year: beyond about 292 years the
// expiry time overflows, and no class runs that long.
const MaxTTLSeconds = 366 * 24 * 60 * 60

// ValidateID reports whether s may name a class, a student or a subject.
func ValidateID(kind, s string) error {
	if !idPattern.MatchString(s) {
		return fmt.Errorf("%s %q must match %s", kind, s, idPattern.String())
	}
	return nil
}

// Validate checks a spec on its own; whether its template exists is the
// policy's business.
func (s ClassSpec) Validate() error {
	if err := ValidateID("subject", s.Subject); err != nil {
		return err
	}
	if s.Template == "" {
		return fmt.Errorf("template is required")
	}
	if len(s.Students) == 0 {
		return fmt.Errorf("students must name at least one student")
	}
	if len(s.Students) > MaxStudents {
		return fmt.Errorf("students lists %d students, at most %d are allowed", len(s.Students), MaxStudents)
	}
	seen := make(map[string]bool, len(s.Students))
	for _, st := range s.Students {
		if err := ValidateID("student", st); err != nil {
			return err
		}
		if seen[st] {
			return fmt.Errorf("student %q is listed twice", st)
		}
		seen[st] = true
	}
	if s.TTLSeconds < 0 {
		return fmt.Errorf("ttlSeconds must not be negative")
	}
	if s.TTLSeconds > MaxTTLSeconds {
		return fmt.Errorf("ttlSeconds is %d, at most %d (a year) is allowed", s.TTLSeconds, MaxTTLSeconds)
	}
	return nil
}

// ValidateStudents checks a list of student ids: each valid, none twice, at
// most MaxStudents.
func ValidateStudents(students []string) error {
	if len(students) > MaxStudents {
		return fmt.Errorf("students lists %d students, at most %d are allowed", len(students), MaxStudents)
	}
	seen := make(map[string]bool, len(students))
	for _, st := range students {
		if err := ValidateID("student", st); err != nil {
			return err
		}
		if seen[st] {
			return fmt.Errorf("student %q is listed twice", st)
		}
		seen[st] = true
	}
	return nil
}

// Validate checks a roster on its own; whether its subject is registered is
// the store's business. An empty roster is allowed: a class may be
// registered before its students are known.
func (r Roster) Validate() error {
	if err := ValidateID("class id", r.ClassID); err != nil {
		return err
	}
	if err := ValidateID("subject", r.Subject); err != nil {
		return err
	}
	return ValidateStudents(r.Students)
}

// ValidateRole reports whether r is a role a user may have.
func ValidateRole(r Role) error {
	if r != RoleAdmin && r != RoleTeacher {
		return fmt.Errorf("role %q must be %q or %q", r, RoleAdmin, RoleTeacher)
	}
	return nil
}

// ValidateUserName reports whether name may name a user: an id, and not one
// of the built-in actors.
func ValidateUserName(name string) error {
	if err := ValidateID("user name", name); err != nil {
		return err
	}
	if ReservedUserName(name) {
		return fmt.Errorf("user name %q is reserved", name)
	}
	return nil
}
