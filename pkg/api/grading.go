package api

import (
	"strconv"
	"time"
)

// Grade is what a grader writes to /grade/grade.json for one student's
// submission (the schema is pkg/grading/grade.schema.json). Every number is
// points; a test's points add up to the grade's only if the grader says so.
type Grade struct {
	Score    float64     `json:"score" bson:"score"`
	MaxScore float64     `json:"maxScore" bson:"maxScore"`
	Feedback string      `json:"feedback" bson:"feedback"`
	Tests    []GradeTest `json:"tests" bson:"tests"`
}

// GradeTest is one check a grader made.
type GradeTest struct {
	Name     string  `json:"name" bson:"name"`
	Score    float64 `json:"score" bson:"score"`
	MaxScore float64 `json:"maxScore" bson:"maxScore"`
	Message  string  `json:"message" bson:"message"`
}

// States of a student's grade in a grading attempt.
const (
	GradePending = "pending"
	GradeGraded  = "graded"
	GradeFailed  = "grading failed"
)

// GradeRecord is one student's grade of one attempt as Homeroom stores it
// beside the manifest: at GradeKey (the latest attempt) and at
// GradeAttemptKey (every attempt, kept). Grade is nil when State is
// GradeFailed; Reason then says why.
type GradeRecord struct {
	SchemaVersion int       `json:"schemaVersion"`
	ClassID       string    `json:"classId"`
	RunID         string    `json:"runId"`
	StudentID     string    `json:"studentId"`
	Attempt       int       `json:"attempt"`
	State         string    `json:"state"`
	Reason        string    `json:"reason,omitempty"`
	Grade         *Grade    `json:"grade,omitempty"`
	Image         string    `json:"image"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
}

// GradeKey is where the latest grade of a student in a run is stored.
func GradeKey(classID, runID, studentID string) string {
	return ArtifactPrefix(classID, runID, studentID) + "grade.json"
}

// GradeAttemptKey is where attempt n of a student's grade in a run is kept.
func GradeAttemptKey(classID, runID, studentID string, attempt int) string {
	return ArtifactPrefix(classID, runID, studentID) + "grades/" + strconv.Itoa(attempt) + ".json"
}

// Grading is the grading of one Down run: the desired attempt, written when
// the run completes (attempt 1) and by a regrade (the next), and each
// student's outcome of that attempt, written by the controller. It lives in
// the store's "gradings" collection, one document per run; feedback is only
// in the grade records in the object store.
type Grading struct {
	ID       string `json:"-" bson:"_id"` // GradingID(classID, runID)
	ClassID  string `json:"classId" bson:"classId"`
	RunID    string `json:"runId" bson:"runId"`
	Subject  string `json:"subject" bson:"subject"`
	Template string `json:"template" bson:"template"`
	Attempt  int    `json:"attempt" bson:"attempt"`
	// RequestedAt and RequestedBy say who asked for this attempt: the
	// controller for the first, a teacher for a regrade.
	RequestedAt time.Time `json:"requestedAt" bson:"requestedAt"`
	RequestedBy string    `json:"requestedBy" bson:"requestedBy"`
	// Students are the students the run collected, in order; only they
	// are graded.
	Students []string `json:"students" bson:"students"`
	// Results holds each student's latest outcome by student id. Each is
	// written on its own ($set of one field), so the controller's results
	// and a teacher's regrade never overwrite each other.
	Results map[string]GradingStudent `json:"results" bson:"results"`
}

// GradingStudent is one student's outcome of an attempt.
type GradingStudent struct {
	State string `json:"state" bson:"state"`
	// Attempt is the attempt the outcome belongs to; a student whose
	// Attempt is behind the grading's is pending.
	Attempt  int       `json:"attempt" bson:"attempt"`
	Score    *float64  `json:"score,omitempty" bson:"score,omitempty"`
	MaxScore *float64  `json:"maxScore,omitempty" bson:"maxScore,omitempty"`
	Reason   string    `json:"reason,omitempty" bson:"reason,omitempty"`
	GradedAt time.Time `json:"gradedAt,omitzero" bson:"gradedAt,omitempty"`
}

// GradingID is the store id of a run's grading.
func GradingID(classID, runID string) string { return classID + "/" + runID }

// Pending lists the students not yet graded in the current attempt.
func (g *Grading) Pending() []string {
	var out []string
	for _, id := range g.Students {
		if g.Results[id].Attempt < g.Attempt {
			out = append(out, id)
		}
	}
	return out
}

// Counts returns how many students are graded and how many failed in the
// current attempt.
func (g *Grading) Counts() (graded, failed int) {
	for _, id := range g.Students {
		r := g.Results[id]
		if r.Attempt < g.Attempt {
			continue
		}
		switch r.State {
		case GradeGraded:
			graded++
		case GradeFailed:
			failed++
		}
	}
	return graded, failed
}

// ConditionGraded is on a class whose last Down run has a grader: True once
// every collected student has a grade of the current attempt, False while
// some are pending or failed.
const ConditionGraded = "Graded"

// Gradebook is a run's grades as the API serves them.
type Gradebook struct {
	ClassID string          `json:"classId"`
	RunID   string          `json:"runId"`
	Attempt int             `json:"attempt"`
	Items   []GradebookItem `json:"items"`
}

// GradebookItem is one student's row of a gradebook.
type GradebookItem struct {
	Student  string      `json:"student"`
	State    string      `json:"state"`
	Attempt  int         `json:"attempt"`
	Score    *float64    `json:"score,omitempty"`
	MaxScore *float64    `json:"maxScore,omitempty"`
	Feedback string      `json:"feedback,omitempty"`
	Reason   string      `json:"reason,omitempty"`
	Tests    []GradeTest `json:"tests,omitempty"`
}
