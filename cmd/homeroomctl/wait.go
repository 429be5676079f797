package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/client"
)

// wait polls the class until the controller reports the desired phase for
// the latest generation (exit 0), reports Failed (exit 5), or timeout
// passes (exit 4). Progress goes to stderr: redrawn in place on a
// terminal, one line per change otherwise. It returns the last class seen.
func (a *app) wait(ctx context.Context, c *client.Client, cl *client.Class, want api.Phase, timeout time.Duration) (*client.Class, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := &progress{w: a.err, tty: a.tty()}
	defer p.done()
	interval := a.pollInterval
	if interval <= 0 {
		interval = time.Second
	}
	for {
		p.show(progressLine(cl, want))
		if cl.Status.ObservedGeneration == cl.Generation {
			switch cl.Status.Phase {
			case want:
				p.done()
				if !a.json() {
					fmt.Fprintf(a.out, "class/%s is %s%s\n", cl.ID, want, summary(cl, want))
				}
				return cl, nil
			case api.PhaseFailed:
				msg := ""
				if r := api.FindCondition(cl.Status.Conditions, api.ConditionReady); r != nil && r.Message != "" {
					msg = ": " + r.Message
				}
				return cl, withCode(exitFailed, fmt.Errorf("class %s is Failed%s", cl.ID, msg))
			}
		}
		select {
		case <-ctx.Done():
			return cl, a.waitTimeout(cl, want, timeout)
		case <-time.After(interval):
		}
		next, err := c.GetClass(ctx, cl.ID)
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				return cl, a.waitTimeout(cl, want, timeout)
			}
			return cl, err
		}
		cl = next
	}
}

func (a *app) waitTimeout(cl *client.Class, want api.Phase, timeout time.Duration) error {
	return withCode(exitTimeout, fmt.Errorf("timed out after %s waiting for class %s to be %s: it is %s (generation %d, observed %d)",
		timeout, cl.ID, want, dash(string(cl.Status.Phase)), cl.Generation, cl.Status.ObservedGeneration))
}

func summary(cl *client.Class, want api.Phase) string {
	if want == api.PhaseUp {
		return fmt.Sprintf(": %d/%d students ready", running(cl), len(cl.Spec.Students))
	}
	return ""
}

// progressLine describes where the class is on its way to want.
func progressLine(cl *client.Class, want api.Phase) string {
	phase := dash(string(cl.Status.Phase))
	if cl.Status.ObservedGeneration != cl.Generation {
		phase += " (not yet seen)"
	}
	if want == api.PhaseUp {
		n, total := running(cl), len(cl.Spec.Students)
		return fmt.Sprintf("%s %s %s %d/%d students ready", cl.ID, phase, bar(n, total), n, total)
	}
	left := 0
	for _, s := range cl.Status.Students {
		if s.State != "removed" {
			left++
		}
	}
	return fmt.Sprintf("%s %s collecting: %d left", cl.ID, phase, left)
}

func bar(n, total int) string {
	const width = 20
	if total <= 0 {
		return "[" + strings.Repeat("-", width) + "]"
	}
	full := n * width / total
	return "[" + strings.Repeat("#", full) + strings.Repeat("-", width-full) + "]"
}

// progress shows a status line: redrawn in place on a terminal, printed
// when it changes otherwise.
type progress struct {
	w       interface{ Write([]byte) (int, error) }
	tty     bool
	last    string
	pending bool // a line is drawn without its newline
}

func (p *progress) show(line string) {
	if line == p.last {
		return
	}
	p.last = line
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.pending = true
		return
	}
	fmt.Fprintln(p.w, line)
}

func (p *progress) done() {
	if p.pending {
		fmt.Fprintln(p.w)
		p.pending = false
	}
}

func (a *app) tty() bool {
	if a.isTTY != nil {
		return a.isTTY()
	}
	f, ok := a.err.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
