// Package api holds the types of Homeroom's contract: a class as users and the
// controller see it, and the labels that mark what Homeroom owns in Docker.
package api

import (
	"encoding/json"
	"time"
)

// Phase is where a class is, or where a teacher wants it.
type Phase string

const (
	PhasePending      Phase = "Pending"
	PhaseProvisioning Phase = "Provisioning"
	PhaseUp           Phase = "Up"
	PhaseCollecting   Phase = "Collecting"
	PhaseDown         Phase = "Down"
	PhaseFailed       Phase = "Failed"
)

// Class is one document in the store: the desired state written by the
// apiserver and the status written by the controller.
type Class struct {
	ID           string    `json:"id" bson:"_id"`
	Spec         ClassSpec `json:"spec" bson:"spec"`
	DesiredPhase Phase     `json:"desiredPhase" bson:"desiredPhase"`
	// UpSince is when the current Up was asked for; a class's TTL counts
	// from it, so every new Up gets a full TTL.
	UpSince *time.Time `json:"upSince,omitempty" bson:"upSince,omitempty"`
	// DownReason says why the desired phase is Down when no teacher asked:
	// ReasonTTLExpired.
	DownReason string `json:"downReason,omitempty" bson:"downReason,omitempty"`
	Generation int64  `json:"generation" bson:"generation"`
	// DesiredAt is when the desired phase last changed, by a teacher, the
	// TTL or the schedule: a schedule's event older than this does not
	// override it.
	DesiredAt *time.Time `json:"desiredAt,omitempty" bson:"desiredAt,omitempty"`
	// ScheduledSince is when the spec's schedule was last set or changed:
	// the schedule's events before it do not count.
	ScheduledSince *time.Time `json:"scheduledSince,omitempty" bson:"scheduledSince,omitempty"`
	// Bell is the start of the session the schedule brought the class Up
	// for, while it is Up for it: how late the class was ready is measured
	// against it.
	Bell *time.Time `json:"bell,omitempty" bson:"bell,omitempty"`
	// ScheduledBell is the start of the session whose window last brought
	// the class Up, kept whatever a teacher did since: a window opens once.
	ScheduledBell *time.Time `json:"scheduledBell,omitempty" bson:"scheduledBell,omitempty"`
	// PerStudent is what teachers asked for single students, by student
	// id: a restart, an early hand-in. The roster stays in the spec.
	PerStudent map[string]StudentDesire `json:"perStudent,omitempty" bson:"perStudent,omitempty"`
	// Version changes on every write (spec or status); writers put it in the
	// update filter so that a concurrent write is detected, never overwritten.
	Version   int64       `json:"resourceVersion" bson:"version"`
	CreatedAt time.Time   `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time   `json:"updatedAt" bson:"updatedAt"`
	Status    ClassStatus `json:"status" bson:"status"`
}

// ClassSpec is what a teacher declares.
type ClassSpec struct {
	Subject    string   `json:"subject" bson:"subject"`
	Template   string   `json:"template" bson:"template"`
	Students   []string `json:"students" bson:"students"`
	TTLSeconds int64    `json:"ttlSeconds,omitempty" bson:"ttlSeconds,omitempty"`
	// Schedule is the class's timetable: the controller brings it Up
	// before each session and Down at its end (package timetable).
	Schedule *Schedule `json:"schedule,omitempty" bson:"schedule,omitempty"`
}

// Schedule says when a class is in session: weekly lessons in a time zone,
// one-off sessions, and dates without lessons.
type Schedule struct {
	// Timezone is an IANA name such as Europe/Berlin: weekly lessons keep
	// their wall-clock time across daylight-saving changes.
	Timezone string          `json:"timezone" bson:"timezone" yaml:"timezone"`
	Weekly   []WeeklySession `json:"weekly,omitempty" bson:"weekly,omitempty" yaml:"weekly,omitempty"`
	Sessions []Session       `json:"sessions,omitempty" bson:"sessions,omitempty" yaml:"sessions,omitempty"`
	// Except lists local dates (2026-12-24) on which weekly lessons do
	// not take place; one-off sessions are not affected.
	Except []string `json:"except,omitempty" bson:"except,omitempty" yaml:"except,omitempty"`
	// ReadyBeforeSeconds is how long before a session's start the class
	// should be ready; absent means DefaultReadyBeforeSeconds.
	ReadyBeforeSeconds *int64 `json:"readyBeforeSeconds,omitempty" bson:"readyBeforeSeconds,omitempty" yaml:"readyBeforeSeconds,omitempty"`
}

// DefaultReadyBeforeSeconds: ready five minutes before the bell.
const DefaultReadyBeforeSeconds = 300

// ReadyBefore is the schedule's readyBeforeSeconds, or its default.
func (s *Schedule) ReadyBefore() time.Duration {
	if s == nil || s.ReadyBeforeSeconds == nil {
		return DefaultReadyBeforeSeconds * time.Second
	}
	return time.Duration(*s.ReadyBeforeSeconds) * time.Second
}

// StudentDesire is what a teacher asked for one student of an Up class.
// Each is a time: the controller acts on a request newer than what it last
// did for that student, so that asking again acts again.
type StudentDesire struct {
	// RestartAt asks for the student's sandbox to be made again from its
	// template, its work volumes kept, once (status.restarted records it).
	RestartAt *time.Time `json:"restartAt,omitempty" bson:"restartAt,omitempty"`
	// CollectAt asks for the student's work to be collected now, as a run
	// of kind student (an early hand-in), the sandbox left running.
	CollectAt *time.Time `json:"collectAt,omitempty" bson:"collectAt,omitempty"`
	// Until keeps the student's sandbox Up past the class's Down until
	// this time (extra time, an accommodation); it is collected then, in
	// the Down's run.
	Until *time.Time `json:"until,omitempty" bson:"until,omitempty"`
	// UntilUp is the class's upSince when the extra time was given: it
	// holds for that Up's Down only, and a new Up ends it.
	UntilUp *time.Time `json:"untilUp,omitempty" bson:"untilUp,omitempty"`
	// LateAt asks, while the class is Down, for a late hand-in: the
	// student's sandbox made again with their last collected work in it,
	// signed in to as in class until LateUntil, then collected as a run of
	// kind late and removed. It holds for the Down it was asked in.
	LateAt    *time.Time `json:"lateAt,omitempty" bson:"lateAt,omitempty"`
	LateUntil *time.Time `json:"lateUntil,omitempty" bson:"lateUntil,omitempty"`
}

// MaxExtension bounds how far ahead one student's time may be extended.
const MaxExtension = 24 * time.Hour

// Extended tells whether student's time runs past the class's Down at now:
// extra time given during the class's current Up, not over yet.
func (c *Class) Extended(student string, now time.Time) bool {
	d := c.PerStudent[student]
	return d.Until != nil && now.Before(*d.Until) && d.UntilUp != nil && c.UpSince != nil && d.UntilUp.Equal(*c.UpSince)
}

// LateAsked tells whether student has a late hand-in asked during the
// class's current Down and not yet collected: its sandbox is kept, or made
// again, until the hand-in's end.
func (c *Class) LateAsked(student string) bool {
	d := c.PerStudent[student]
	if c.DesiredPhase == PhaseUp || d.LateAt == nil || d.LateUntil == nil {
		return false
	}
	if c.DesiredAt != nil && !d.LateAt.After(*c.DesiredAt) {
		return false // asked before the class last came Up or went Down
	}
	last, ok := c.Status.Late[student]
	return !ok || last.RequestedAt.Before(*d.LateAt)
}

// Late tells whether student's late hand-in runs at now.
func (c *Class) Late(student string, now time.Time) bool {
	return c.LateAsked(student) && now.Before(*c.PerStudent[student].LateUntil)
}

// SignInSince is the instant that links and sessions for student's
// sandbox are bound to at now: the class's Up, which extra time carries
// past its Down, or a late hand-in's request. False when the student has
// no sandbox to sign in to.
func (c *Class) SignInSince(student string, now time.Time) (time.Time, bool) {
	switch {
	case c.UpSince != nil && (c.DesiredPhase == PhaseUp || c.Extended(student, now)):
		return *c.UpSince, true
	case c.Late(student, now):
		return *c.PerStudent[student].LateAt, true
	}
	return time.Time{}, false
}

// SignInUntil is when signing in to student's sandbox ends, if before the
// class's own end: the end of extra time or of a late hand-in.
func (c *Class) SignInUntil(student string, now time.Time) *time.Time {
	d := c.PerStudent[student]
	switch {
	case c.DesiredPhase == PhaseUp:
		return nil
	case c.Extended(student, now):
		return d.Until
	case c.Late(student, now):
		return d.LateUntil
	}
	return nil
}

// HandIn records the last collection of one student on request.
type HandIn struct {
	RunID string `json:"runId" bson:"runId"`
	// RequestedAt is the request it answered (StudentDesire.CollectAt).
	RequestedAt time.Time `json:"requestedAt" bson:"requestedAt"`
	CollectedAt time.Time `json:"collectedAt" bson:"collectedAt"`
}

// ScheduleView is a class's timetable with its next sessions
// (GET /api/v1/classes/{classId}/schedule).
type ScheduleView struct {
	ClassID  string    `json:"classId"`
	Schedule *Schedule `json:"schedule"`
	// LeadSeconds is how long before each session's start the controller
	// brings the class Up: readyBeforeSeconds and its expected Up time.
	LeadSeconds float64 `json:"leadSeconds"`
	// Bell is the start of the session the class is Up for, if any.
	Bell     *time.Time         `json:"bell,omitempty"`
	Sessions []ScheduledSession `json:"sessions"`
}

// ScheduledSession is one upcoming session.
type ScheduledSession struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	UpFrom time.Time `json:"upFrom"`
	// Now: the session has started.
	Now bool `json:"now,omitempty"`
}

// WeeklySession is a lesson on some days of every week, in local time
// ("09:00" to "10:30").
type WeeklySession struct {
	Days  []string `json:"days" bson:"days" yaml:"days"`
	Start string   `json:"start" bson:"start" yaml:"start"`
	End   string   `json:"end" bson:"end" yaml:"end"`
}

// Session is one lesson at a fixed time.
type Session struct {
	Start time.Time `json:"start" bson:"start" yaml:"start"`
	End   time.Time `json:"end" bson:"end" yaml:"end"`
}

// ClassStatus is what the controller observed on its last pass.
type ClassStatus struct {
	Phase              Phase           `json:"phase" bson:"phase"`
	ObservedGeneration int64           `json:"observedGeneration" bson:"observedGeneration"`
	ExpiresAt          *time.Time      `json:"expiresAt,omitempty" bson:"expiresAt,omitempty"`
	Network            string          `json:"network,omitempty" bson:"network,omitempty"`
	Conditions         []Condition     `json:"conditions" bson:"conditions"`
	Students           []StudentStatus `json:"students" bson:"students"`
	// Run is the Down run in progress or last completed; its id names the
	// artifact prefix so that a resumed Down writes to the same place.
	Run *DownRun `json:"run,omitempty" bson:"run,omitempty"`
	// Autosave is the last autosave of the class while Up: every running
	// sandbox's work collected, as a run of kind autosave, without
	// stopping anything.
	Autosave *Autosave `json:"autosave,omitempty" bson:"autosave,omitempty"`
	// UpSeconds are how long the class's last Ups took, oldest first (at
	// most MaxUpSeconds): a scheduled Up starts that much earlier.
	UpSeconds []float64 `json:"upSeconds,omitempty" bson:"upSeconds,omitempty"`
	// UpAt is when the current Up first had every student running. A
	// sandbox lost and made again later does not move it: that is a repair
	// of a class that came Up, not another Up.
	UpAt *time.Time `json:"upAt,omitempty" bson:"upAt,omitempty"`
	// HandIns are the students' collections on request, by student id.
	HandIns map[string]HandIn `json:"handIns,omitempty" bson:"handIns,omitempty"`
	// Late are the students' late hand-ins after a Down, by student id:
	// the last one collected (RequestedAt is StudentDesire.LateAt).
	Late map[string]HandIn `json:"late,omitempty" bson:"late,omitempty"`
	// Restarted is, by student id, the restart request (RestartAt) the
	// student's sandbox was last made again for.
	Restarted map[string]time.Time `json:"restarted,omitempty" bson:"restarted,omitempty"`
	// Restored is, by student id, the last time a student's sandbox was
	// made again elsewhere with their collected work put back: what was
	// restored and from when.
	Restored map[string]Restored `json:"restored,omitempty" bson:"restored,omitempty"`
	// LeftBehind is, by student id, the work volumes their sandboxes left
	// where they were when they were made again elsewhere (a lost swarm
	// node): what the student did after the work that was restored. Each
	// is collected into a run of its own, of kind recovered, once that
	// place is back, then removed there, and then dropped from here.
	LeftBehind map[string][]LeftBehind `json:"leftBehind,omitempty" bson:"leftBehind,omitempty"`
}

// LeftBehind is one place holding a student's work volumes that their
// sandbox, made again elsewhere, left.
type LeftBehind struct {
	// On is where: the swarm node's id.
	On string `json:"on" bson:"on"`
	// Reason is why the sandbox was made again (it names the node).
	Reason string    `json:"reason" bson:"reason"`
	Since  time.Time `json:"since" bson:"since"`
	// RunID is the run of kind recovered the volumes are collected into,
	// chosen when this was recorded: a collection done again writes the
	// same run.
	RunID string `json:"runId" bson:"runId"`
	// CollectedAt is when they were collected and verified; removing them
	// there comes only after.
	CollectedAt *time.Time `json:"collectedAt,omitempty" bson:"collectedAt,omitempty"`
	Files       int        `json:"files" bson:"files"`
}

// Restored records work put back into a student's new sandbox.
type Restored struct {
	// RunID is the run the work came from (an autosave, a hand-in or a
	// Down), collected at CollectedAt; "" when there was none to restore.
	RunID       string    `json:"runId,omitempty" bson:"runId,omitempty"`
	CollectedAt time.Time `json:"collectedAt,omitempty" bson:"collectedAt,omitempty"`
	Files       int       `json:"files" bson:"files"`
	At          time.Time `json:"at" bson:"at"`
	// Why the sandbox was made again, e.g. the node it was on being down.
	Reason string `json:"reason" bson:"reason"`
	// Pending says the sandbox is being made again and the work is not put
	// back yet (At is when that began): recorded before the old sandbox is
	// removed, so that a controller that crashes on the way still puts the
	// work back before the new sandbox first starts.
	Pending bool `json:"pending,omitempty" bson:"pending,omitempty"`
}

// RestorePending reports whether student's sandbox was being made again
// elsewhere and their work is still to be put back.
func (s ClassStatus) RestorePending(student string) bool {
	return s.Restored[student].Pending
}

// MaxUpSeconds is how many Up durations a class's status keeps.
const MaxUpSeconds = 3

// Autosave records one autosave run.
type Autosave struct {
	RunID       string    `json:"runId" bson:"runId"`
	StartedAt   time.Time `json:"startedAt" bson:"startedAt"`
	CompletedAt time.Time `json:"completedAt" bson:"completedAt"`
	// Collected and Failed count the students; a failed student's work is
	// in the previous autosave (or none), and the log says why.
	Collected int `json:"collected" bson:"collected"`
	Failed    int `json:"failed" bson:"failed"`
	// Containers are the ids of the sandboxes collected. The autosave
	// before is deleted only when this one collected every sandbox it had:
	// one made again since (its work lost with a disk or a daemon) keeps
	// the earlier autosave, which may be the only copy of that work.
	Containers []string `json:"containers,omitempty" bson:"containers,omitempty"`
}

// DownRun records one collection of a class.
type DownRun struct {
	ID          string     `json:"id" bson:"id"`
	StartedAt   time.Time  `json:"startedAt" bson:"startedAt"`
	CompletedAt *time.Time `json:"completedAt,omitempty" bson:"completedAt,omitempty"`
}

// StudentStatus is one student's sandbox as observed.
type StudentStatus struct {
	ID        string `json:"id" bson:"id"`
	Container string `json:"container" bson:"container"`
	State     string `json:"state" bson:"state"`
	Endpoint  string `json:"endpoint,omitempty" bson:"endpoint,omitempty"`
	// Message says why a sandbox is not ready (StateUnready): what its
	// readiness check got and its last log lines.
	Message   string        `json:"message,omitempty" bson:"message,omitempty"`
	Artifacts *ArtifactsRef `json:"artifacts,omitempty" bson:"artifacts,omitempty"`
	// WorkspaceBytes is what the student's work volumes held when last
	// measured (about every resync); absent until then.
	WorkspaceBytes *int64 `json:"workspaceBytes,omitempty" bson:"workspaceBytes,omitempty"`
}

// States of a student's sandbox besides Docker's own (running, exited, …),
// for a template with a readiness check: its container runs, but it has not
// answered the check yet (StateStarting), or not within the check's timeout
// (StateUnready). Such a student does not count as running.
const (
	StateStarting = "starting"
	StateUnready  = "unready"
)

// ArtifactsRef points at a student's collected work of one run.
type ArtifactsRef struct {
	RunID       string    `json:"runId" bson:"runId"`
	Prefix      string    `json:"prefix" bson:"prefix"`
	Manifest    string    `json:"manifest" bson:"manifest"`
	Files       int       `json:"files" bson:"files"`
	Bytes       int64     `json:"bytes" bson:"bytes"`
	CollectedAt time.Time `json:"collectedAt" bson:"collectedAt"`
	// ManifestSHA256 pins the manifest, which pins every object's checksum.
	ManifestSHA256 string `json:"manifestSha256" bson:"manifestSha256"`
	// State is the student's checkpoint in the run: CollectVerified once
	// every object was read back and matched, CollectRemoved once the
	// container is gone.
	State     string     `json:"state" bson:"state"`
	RemovedAt *time.Time `json:"removedAt,omitempty" bson:"removedAt,omitempty"`
	// Truncated: the template's size or file cap left files out.
	Truncated bool `json:"truncated,omitempty" bson:"truncated,omitempty"`
	// Incomplete: something the template's rules would have kept was not
	// collected (the manifest's skipped entries say what and why).
	Incomplete bool `json:"incomplete,omitempty" bson:"incomplete,omitempty"`
}

// Checkpoints of a student's collection.
const (
	CollectVerified = "verified"
	CollectRemoved  = "removed"
)

// Condition follows the Kubernetes convention: a type, a status of "True",
// "False" or "Unknown", a machine-readable reason and a human message.
type Condition struct {
	Type               string    `json:"type" bson:"type"`
	Status             string    `json:"status" bson:"status"`
	Reason             string    `json:"reason" bson:"reason"`
	Message            string    `json:"message" bson:"message"`
	LastTransitionTime time.Time `json:"lastTransitionTime" bson:"lastTransitionTime"`
}

// ReasonTTLExpired marks a class taken Down because its ttlSeconds ran out.
const ReasonTTLExpired = "TTLExpired"

// ReasonScheduled marks a class taken Down at the end of its session.
const ReasonScheduled = "Scheduled"

// ExpiresAt is when an Up class runs out of time, or nil when it does not.
func (c *Class) ExpiresAt() *time.Time {
	if c.DesiredPhase != PhaseUp || c.UpSince == nil || c.Spec.TTLSeconds <= 0 {
		return nil
	}
	t := c.UpSince.Add(time.Duration(c.Spec.TTLSeconds) * time.Second)
	return &t
}

// Condition types the controller reports.
const (
	ConditionReady   = "Ready"
	ConditionRouting = "RoutingAvailable"
	ConditionSynced  = "Synced"
	// ConditionTemplateCurrent is False while running sandboxes were made
	// from an older version of the class's template.
	ConditionTemplateCurrent = "TemplateCurrent"
	// ConditionWorkspaceFull is True while a student's work volumes hold
	// more than the template's workspaceMiB; that sandbox is stopped after
	// an autosave and stays stopped until the cap is raised or the class
	// goes Down.
	ConditionWorkspaceFull = "WorkspaceFull"
	// ConditionNetworkLeaked is True on a Down class whose network the
	// Docker daemon refuses to remove although nothing is on it.
	ConditionNetworkLeaked = "NetworkLeaked"
)

// FindCondition returns the condition of type t, or nil.
func FindCondition(cs []Condition, t string) *Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}

// SetCondition replaces or adds c, keeping LastTransitionTime when the status
// did not change so that clients can tell how long a state has held.
func SetCondition(cs []Condition, c Condition) []Condition {
	for i := range cs {
		if cs[i].Type != c.Type {
			continue
		}
		if cs[i].Status == c.Status {
			c.LastTransitionTime = cs[i].LastTransitionTime
		}
		cs[i] = c
		return cs
	}
	return append(cs, c)
}

// MarshalJSON writes absent lists as [] so that clients can iterate without
// checking for null.
func (s ClassStatus) MarshalJSON() ([]byte, error) {
	type plain ClassStatus
	p := plain(s)
	if p.Conditions == nil {
		p.Conditions = []Condition{}
	}
	if p.Students == nil {
		p.Students = []StudentStatus{}
	}
	return json.Marshal(p)
}
