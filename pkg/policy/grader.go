package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Grader is the program that grades a template's collected submissions:
// after a Down, each collected student's files are handed to a container of
// Image, read-only at /submission, with no network, these limits and
// Timeout; it writes /grade/grade.json. Only the policy names graders, never
// a teacher, like the templates themselves.
type Grader struct {
	Image   string   `yaml:"image" json:"image"`
	Command []string `yaml:"command,omitempty" json:"command,omitempty"`
	// User runs the grader, numeric "uid:gid", never root (default
	// 1000:1000): the student's files, which a grader may well execute,
	// are root's and read-only to it.
	User           string  `yaml:"user,omitempty" json:"user"`
	TimeoutSeconds int     `yaml:"timeoutSeconds,omitempty" json:"timeoutSeconds"`
	MemoryMiB      int64   `yaml:"memoryMiB,omitempty" json:"memoryMiB"`
	CPUs           float64 `yaml:"cpus,omitempty" json:"cpus"`
	PIDs           int64   `yaml:"pids,omitempty" json:"pids"`
}

const (
	defaultGraderSeconds   = 120
	maxGraderSeconds       = 3600
	defaultGraderMemoryMiB = 512
	defaultGraderCPUs      = 1
	defaultGraderPIDs      = 128
	defaultGraderUser      = "1000:1000"
	maxGraderArgs          = 64
	maxGraderArgBytes      = 4096
)

// Timeout is how long one student's grading may run.
func (g *Grader) Timeout() time.Duration { return time.Duration(g.TimeoutSeconds) * time.Second }

// UID and GID are the grader's numeric user and group.
func (g *Grader) UID() int { u, _ := g.ids(); return u }
func (g *Grader) GID() int { _, gr := g.ids(); return gr }

func (g *Grader) ids() (int, int) {
	u, gr, _ := strings.Cut(g.User, ":")
	uid, _ := strconv.Atoi(u)
	gid, _ := strconv.Atoi(gr)
	return uid, gid
}

func (g *Grader) normalize() error {
	if err := checkImage(g.Image); err != nil {
		return fmt.Errorf("grader: %w", err)
	}
	if len(g.Command) > maxGraderArgs {
		return fmt.Errorf("grader: command has %d arguments, at most %d", len(g.Command), maxGraderArgs)
	}
	for _, a := range g.Command {
		if len(a) > maxGraderArgBytes || strings.ContainsRune(a, 0) {
			return fmt.Errorf("grader: command argument %.20q… is longer than %d bytes or has a NUL", a, maxGraderArgBytes)
		}
	}
	if g.User == "" {
		g.User = defaultGraderUser
	}
	u, gr, ok := strings.Cut(g.User, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(gr)
	if !ok || err1 != nil || err2 != nil || uid <= 0 || gid <= 0 || uid > 1<<31-2 || gid > 1<<31-2 {
		return fmt.Errorf("grader: user %q must be a numeric uid:gid other than root's", g.User)
	}
	if g.TimeoutSeconds < 0 || g.TimeoutSeconds > maxGraderSeconds {
		return fmt.Errorf("grader: timeoutSeconds must be between 1 and %d", maxGraderSeconds)
	}
	if g.TimeoutSeconds == 0 {
		g.TimeoutSeconds = defaultGraderSeconds
	}
	if g.MemoryMiB < 0 || (g.MemoryMiB > 0 && g.MemoryMiB < 16) || g.MemoryMiB > 64<<10 {
		return fmt.Errorf("grader: memoryMiB must be between 16 and %d", 64<<10)
	}
	if g.MemoryMiB == 0 {
		g.MemoryMiB = defaultGraderMemoryMiB
	}
	if g.CPUs < 0 || math.IsNaN(g.CPUs) || g.CPUs > 64 {
		return fmt.Errorf("grader: cpus must be a positive number of at most 64")
	}
	if g.CPUs == 0 {
		g.CPUs = defaultGraderCPUs
	}
	if g.PIDs < 0 || (g.PIDs > 0 && g.PIDs < 8) || g.PIDs > 32768 {
		return fmt.Errorf("grader: pids must be between 8 and 32768")
	}
	if g.PIDs == 0 {
		g.PIDs = defaultGraderPIDs
	}
	return nil
}
