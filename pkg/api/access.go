package api

import (
	"encoding/json"
	"time"
)

// Role is what a caller may do.
type Role string

const (
	// RoleAdmin may do everything: keep the school's records (subjects,
	// rosters), manage users and their tokens, and act on every class.
	RoleAdmin Role = "admin"
	// RoleTeacher sees and acts on the classes of its subjects only, and
	// brings Up only registered classes with students from their official
	// rosters.
	RoleTeacher Role = "teacher"
	// RoleController marks the changes of desired state the controller
	// makes itself (a TTL expiry). No token has it.
	RoleController Role = "controller"
	// RoleSystem marks a change written with no actor in its context: a tool
	// or a test using the store directly. No token has it.
	RoleSystem Role = "system"
)

// Reserved names: they identify the built-in actors in the audit trail, so
// no user may take them.
const (
	// BootstrapAdmin is the actor of the bootstrap admin token
	// (HOMEROOM_ADMIN_TOKEN or <data dir>/admin.token).
	BootstrapAdmin = "admin"
	// ControllerActor is the actor of the controller's own changes.
	ControllerActor = "controller"
	// SystemActor is the actor of writes made without one.
	SystemActor = "system"
)

// ReservedUserName reports whether name belongs to a built-in actor.
func ReservedUserName(name string) bool {
	return name == BootstrapAdmin || name == ControllerActor || name == SystemActor
}

// User is someone who may call the API: an admin, or a teacher of some
// subjects. Subjects are meaningful for teachers only; an admin sees every
// subject whatever the list says.
type User struct {
	Name      string    `json:"name" bson:"_id"`
	Role      Role      `json:"role" bson:"role"`
	Subjects  []string  `json:"subjects" bson:"subjects"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
}

// Subject is a subject on the school's records. Teachers lists the users of
// role teacher it is granted to; it is derived, never stored.
type Subject struct {
	ID        string    `json:"id" bson:"_id"`
	Title     string    `json:"title,omitempty" bson:"title,omitempty"`
	Teachers  []string  `json:"teachers" bson:"-"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
}

// Roster is a registered class: the subject it belongs to and its official
// roster. A teacher may bring Up only a registered class, and only students
// on its roster (any subset of them).
type Roster struct {
	ClassID   string    `json:"classId" bson:"_id"`
	Subject   string    `json:"subject" bson:"subject"`
	Students  []string  `json:"students" bson:"students"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
}

// RosterImport says what a roster import did (or, with dryRun, would do),
// class by class.
type RosterImport struct {
	DryRun    bool     `json:"dryRun"`
	Classes   int      `json:"classes"`
	Students  int      `json:"students"`
	Created   []string `json:"created"`
	Updated   []string `json:"updated"`
	Unchanged []string `json:"unchanged"`
}

// Token describes an API token. The token itself is shown once, when it is
// issued; the store keeps only its SHA-256.
type Token struct {
	ID          string     `json:"id" bson:"_id"`
	User        string     `json:"user" bson:"user"`
	Description string     `json:"description,omitempty" bson:"description,omitempty"`
	CreatedAt   time.Time  `json:"createdAt" bson:"createdAt"`
	CreatedBy   string     `json:"createdBy" bson:"createdBy"`
	ExpiresAt   *time.Time `json:"expiresAt,omitempty" bson:"expiresAt,omitempty"`
	RevokedAt   *time.Time `json:"revokedAt,omitempty" bson:"revokedAt,omitempty"`
	RevokedBy   string     `json:"revokedBy,omitempty" bson:"revokedBy,omitempty"`
}

// Actor is who made a change, as the audit trail records it.
type Actor struct {
	Name string `json:"name" bson:"name"`
	Role Role   `json:"role" bson:"role"`
	// TokenID names the token used (never the token itself); empty for the
	// bootstrap admin token and the built-in actors.
	TokenID string `json:"tokenId,omitempty" bson:"tokenId,omitempty"`
	// RequestID is the request's X-Request-Id, also in the apiserver's log.
	RequestID string `json:"requestId,omitempty" bson:"requestId,omitempty"`
	// Via is the API call, e.g. "POST /api/v1/classes/cs101-a/up".
	Via string `json:"via,omitempty" bson:"via,omitempty"`
}

// Audit actions. A class's are its changes of desired state; the others
// change the school's records or who may call the API.
const (
	AuditClassCreate    = "class.create"
	AuditClassUpdate    = "class.update" // a spec changed
	AuditClassUp        = "class.up"
	AuditClassDown      = "class.down"
	AuditClassExpire    = "class.expire"    // taken Down by the controller: TTL
	AuditClassSchedule  = "class.schedule"  // Up or Down by the controller: the timetable
	AuditStudentRestart = "student.restart" // one student's sandbox made again
	AuditStudentCollect = "student.collect" // one student's work collected now
	AuditStudentExtend  = "student.extend"  // one student's time extended past the class's Down
	AuditStudentLate    = "student.late"    // a late hand-in given to one student of a Down class
	AuditClassDelete    = "class.delete"
	AuditSubjectCreate  = "subject.create"
	AuditSubjectUpdate  = "subject.update"
	AuditSubjectDelete  = "subject.delete"
	AuditRosterCreate   = "roster.create"
	AuditRosterUpdate   = "roster.update"
	AuditRosterDelete   = "roster.delete"
	AuditUserCreate     = "user.create"
	AuditUserUpdate     = "user.update"
	AuditUserDelete     = "user.delete"
	AuditTokenIssue     = "token.issue"
	AuditTokenRevoke    = "token.revoke"
	// AuditLinksIssue records sign-in links issued (students' or the
	// caller's own); AuditSandboxOpen a teacher or admin signing in on a
	// student's host through their own link.
	AuditLinksIssue  = "links.issue"
	AuditSandboxOpen = "sandbox.open"
	// AuditRunGrade records a run graded again (or for the first time)
	// at a teacher's or admin's request.
	AuditRunGrade = "run.grade"
)

// AuditEntry records one change: who, when, what, and from what to what.
type AuditEntry struct {
	// ID sorts by time: listing by id is listing in the order of changes.
	ID     string    `json:"id" bson:"_id"`
	Time   time.Time `json:"time" bson:"time"`
	Actor  Actor     `json:"actor" bson:"actor"`
	Action string    `json:"action" bson:"action"`
	// Target is what changed, as kind/id: class/cs101-a, user/alice,
	// token/<id>, roster/cs101-a, subject/cs101.
	Target string `json:"target" bson:"target"`
	// ClassID is set on class and roster entries.
	ClassID string `json:"classId,omitempty" bson:"classId,omitempty"`
	// Subjects are the subjects the change concerns (both, when a class
	// moves from one to another): a teacher sees the entries of theirs.
	Subjects []string `json:"subjects,omitempty" bson:"subjects,omitempty"`
	// From and To are the target before and after; From is absent on a
	// creation, To on a deletion.
	From *AuditState `json:"from,omitempty" bson:"from,omitempty"`
	To   *AuditState `json:"to,omitempty" bson:"to,omitempty"`
}

// AuditState is one side of a change, with the fields of its target's kind:
// a class's desired state (spec, desiredPhase, downReason, generation), a
// roster (subject, students), a subject (title), a user (role, subjects) or
// a token (user, expiresAt, revokedAt).
type AuditState struct {
	Spec         *ClassSpec `json:"spec,omitempty" bson:"spec,omitempty"`
	DesiredPhase Phase      `json:"desiredPhase,omitempty" bson:"desiredPhase,omitempty"`
	DownReason   string     `json:"downReason,omitempty" bson:"downReason,omitempty"`
	Generation   int64      `json:"generation,omitempty" bson:"generation,omitempty"`

	Subject  string   `json:"subject,omitempty" bson:"subject,omitempty"`
	Students []string `json:"students,omitempty" bson:"students,omitempty"`
	Title    string   `json:"title,omitempty" bson:"title,omitempty"`

	Role     Role     `json:"role,omitempty" bson:"role,omitempty"`
	Subjects []string `json:"subjects,omitempty" bson:"subjects,omitempty"`

	User      string     `json:"user,omitempty" bson:"user,omitempty"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty" bson:"expiresAt,omitempty"`
	RevokedAt *time.Time `json:"revokedAt,omitempty" bson:"revokedAt,omitempty"`
}

// ClassState is the desired state of c, for the audit trail.
func ClassState(c *Class) *AuditState {
	spec := c.Spec
	return &AuditState{Spec: &spec, DesiredPhase: c.DesiredPhase, DownReason: c.DownReason, Generation: c.Generation}
}

// MarshalJSON writes absent lists as [] so that clients can iterate without
// checking for null.
func (u User) MarshalJSON() ([]byte, error) {
	type plain User
	p := plain(u)
	if p.Subjects == nil {
		p.Subjects = []string{}
	}
	return json.Marshal(p)
}

// MarshalJSON writes an absent list of teachers as [].
func (s Subject) MarshalJSON() ([]byte, error) {
	type plain Subject
	p := plain(s)
	if p.Teachers == nil {
		p.Teachers = []string{}
	}
	return json.Marshal(p)
}
