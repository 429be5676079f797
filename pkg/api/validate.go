package api

import (
	"fmt"
	"regexp"
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// MaxStudents bounds a roster before any policy applies, so that a single
// request cannot make the controller create an unbounded number of containers.
const MaxStudents = 500

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
	return nil
}
