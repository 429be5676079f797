package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/client"
	"go.yaml.in/yaml/v3"
)

// specFile is a class's spec under spec, as get -o yaml|json prints it.
type specFile struct {
	Subject    string   `yaml:"subject" json:"subject"`
	Template   string   `yaml:"template" json:"template"`
	Students   []string `yaml:"students" json:"students"`
	TTLSeconds int64    `yaml:"ttlSeconds" json:"ttlSeconds"`
	// Schedule is the class's timetable: applying a file without one
	// removes it, as for any other field of the spec.
	Schedule *api.Schedule `yaml:"schedule" json:"schedule"`
}

// classReadOnly are the fields of a class that the server keeps: get
// prints them, and apply takes them without complaint and ignores them, so
// that get's output can be applied as it is.
type classReadOnly struct {
	DesiredPhase   any `yaml:"desiredPhase" json:"desiredPhase"`
	UpSince        any `yaml:"upSince" json:"upSince"`
	DesiredAt      any `yaml:"desiredAt" json:"desiredAt"`
	ScheduledSince any `yaml:"scheduledSince" json:"scheduledSince"`
	Bell           any `yaml:"bell" json:"bell"`
	ScheduledBell  any `yaml:"scheduledBell" json:"scheduledBell"`
	PerStudent     any `yaml:"perStudent" json:"perStudent"`
	DownReason     any `yaml:"downReason" json:"downReason"`
	Generation     any `yaml:"generation" json:"generation"`
	CreatedAt      any `yaml:"createdAt" json:"createdAt"`
	UpdatedAt      any `yaml:"updatedAt" json:"updatedAt"`
	Status         any `yaml:"status" json:"status"`
}

// classSpec is the spec a class of the file declares: under spec, or flat
// beside its id; not both.
func (cf classFile) classSpec() (client.ClassSpec, error) {
	flat := cf.Subject != "" || cf.Template != "" || cf.Students != nil || cf.TTLSeconds != 0 || cf.Schedule != nil
	if cf.Spec == nil {
		return client.ClassSpec{Subject: cf.Subject, Template: cf.Template, Students: cf.Students, TTLSeconds: cf.TTLSeconds, Schedule: cf.Schedule}, nil
	}
	if flat {
		return client.ClassSpec{}, errors.New("give the spec either under spec: or as subject, template, students, ttlSeconds and schedule beside the id, not both")
	}
	s := cf.Spec
	return client.ClassSpec{Subject: s.Subject, Template: s.Template, Students: s.Students, TTLSeconds: s.TTLSeconds, Schedule: s.Schedule}, nil
}

// staleClass is apply's refusal when the server found the class changed
// since the file's resourceVersion (412): exit 2, saying what to do.
func staleClass(file string, cf classFile, err error) error {
	why := "412 precondition_failed"
	var ae *client.Error
	if errors.As(err, &ae) {
		why = fmt.Sprintf("%d %s", ae.Status, ae.Code)
	}
	name := displayName(file)
	if cur, ok := client.CurrentVersion(err); ok {
		return withCode(exitRefused, fmt.Errorf(
			"class %s has changed since the version in %s (resourceVersion %d; it is now at %d), so nothing was written: "+
				"get it again (homeroomctl get %s -o yaml), make your change to that and apply it, "+
				"or apply --force to overwrite the class as it is now (%s)",
			cf.ID, name, cf.ResourceVersion, cur, cf.ID, why))
	}
	return withCode(exitRefused, fmt.Errorf(
		"class %s no longer exists (%s has it at resourceVersion %d), so nothing was written: "+
			"apply --force to create it again (%s)", cf.ID, name, cf.ResourceVersion, why))
}

// printYAML writes v as YAML with the names and order of its JSON (the
// API's), so that what get prints is what apply reads.
func (a *app) printYAML(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// JSON is YAML: parse it into nodes, which keep the order of the keys,
	// then print them in block style rather than JSON's flow style.
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err = a.out.Write(out.Bytes())
	return err
}

// blockStyle clears the styles a node got from JSON: block collections,
// and strings quoted only where YAML needs it (the tags are kept, so a
// string that reads as a number or a date is still quoted).
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}
