package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Labels are the only record of ownership: a Docker object without
// LabelManagedBy=ManagedByValue is never touched, whatever its name.
const (
	LabelManagedBy  = "homeroom.managed-by"
	ManagedByValue  = "homeroom"
	LabelClass      = "homeroom.class"
	LabelStudent    = "homeroom.student"
	LabelConfigHash = "homeroom.config-hash"
	LabelTemplate   = "homeroom.template"
	// LabelCollect records what is collected of the container (its collect
	// paths and caps) as it was made, so that a template changed while Up
	// never collects less of it.
	LabelCollect = "homeroom.collect"
	// LabelCollectPath is the path inside the sandbox a work volume is
	// mounted at.
	LabelCollectPath = "homeroom.collect-path"
	// LabelRecovering marks the stopped container, never started, that
	// mounts a student's work volumes to collect them when their sandbox is
	// gone; its value is the student. It has no LabelStudent, so it is
	// never taken for the sandbox.
	LabelRecovering = "homeroom.recovering"
	// LabelLost is set by a runtime on a sandbox it reports whose work
	// volume is out of reach for good, valued with why (the swarm node it
	// was on is down): the sandbox is made again elsewhere with its last
	// collected work. A runtime's report, never a label on a container.
	LabelLost = "homeroom.lost"
	// LabelLostOn goes with LabelLost: where the lost sandbox's work
	// volumes are (the swarm node's id), to be collected once it is back.
	// A runtime's report too.
	LabelLostOn = "homeroom.lost-on"
	// LabelRecoverOn is put with LabelRecovering on a recovery container
	// for work volumes a lost sandbox left where it was: the runtime makes
	// it there (the swarm node's id of LabelLostOn).
	LabelRecoverOn = "homeroom.recover-on"
	// LabelLate marks a sandbox made again after its class's Down for a
	// late hand-in: it is collected into a run of its own, not the Down's.
	LabelLate = "homeroom.late"
	// LabelGrading marks a grader container; its value is the grading's id
	// (GradingID), and LabelGradeStudent and LabelGradeAttempt say whose
	// submission of which attempt it grades. A grader has no LabelClass:
	// it belongs to a run, not to the class's sandboxes, and a class's
	// passes never see it.
	LabelGrading      = "homeroom.grading"
	LabelGradeStudent = "homeroom.grade-student"
	LabelGradeAttempt = "homeroom.grade-attempt"
)

// GraderName is the container that grades one student's submission of one
// attempt of a run's grading.
func GraderName(classID, runID, studentID string, attempt int) string {
	return "homeroom-grade-" + classID + "-" + runID + "-" + studentID + "-" + strconv.Itoa(attempt)
}

// NetworkName is the class network's name.
func NetworkName(classID string) string { return "homeroom-" + classID }

// ContainerName is a student container's name.
func ContainerName(classID, studentID string) string {
	return "homeroom-" + classID + "-" + studentID
}

// VolumeName is the named volume that holds what a student's sandbox keeps
// at collectPath: it outlives the container, so a sandbox removed by hand
// and made again finds its work, and it is removed only after that work was
// collected and verified. The path's hash keeps names short and distinct.
func VolumeName(classID, studentID, collectPath string) string {
	sum := sha256.Sum256([]byte(collectPath))
	return ContainerName(classID, studentID) + "-" + hex.EncodeToString(sum[:4])
}

// RecoveryName is the container that mounts a student's work volumes to
// collect them (see LabelRecovering).
func RecoveryName(classID, studentID string) string {
	return ContainerName(classID, studentID) + "-recovery"
}

// Endpoint is the URL Traefik routes to a student's sandbox.
func Endpoint(classID, studentID, domain string) string {
	return "http://" + Host(classID, studentID, domain)
}

// Host is the Host header that reaches a student's sandbox.
func Host(classID, studentID, domain string) string {
	return studentID + "." + classID + "." + domain
}

// ArtifactPrefix is where one run of one student is stored.
func ArtifactPrefix(classID, runID, studentID string) string {
	return "classes/" + classID + "/" + runID + "/" + studentID + "/"
}

// NodeVolume is one of Homeroom's volumes on a swarm node, as the node's
// measuring job (nodejob volume-sizes) reports it, one JSON object a line:
// the node's id, the volume's name and labels, and its size in bytes (-1
// where the node's daemon cannot tell).
type NodeVolume struct {
	Node   string            `json:"node"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Size   int64             `json:"size"`
}
