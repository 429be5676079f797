package api

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
)

// NetworkName is the class network's name.
func NetworkName(classID string) string { return "homeroom-" + classID }

// ContainerName is a student container's name.
func ContainerName(classID, studentID string) string {
	return "homeroom-" + classID + "-" + studentID
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
