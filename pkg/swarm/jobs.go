package swarm

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/homeroom/homeroom/pkg/api"
)

// labelJob marks a service as one of Homeroom's one-shot jobs, valued with
// what it does; jobs are never sandboxes.
const labelJob = "homeroom.job"

// labelNode records on a sandbox's service the node it is pinned to, where
// its work volume is; labelStarted, that it was ever started (its volume
// holds the student's work from then on).
const (
	labelNode    = "homeroom.node"
	labelStarted = "homeroom.started"
)

// job is one run of cmd/nodejob: on one node, or on every node (global),
// or on every node that is ready (global and readyOnly: a node that is
// down is not waited for).
type job struct {
	kind           string
	class, student string
	node           string // node id; "" with global
	global         bool
	readyOnly      bool
	args           []string
	output         bool // its standard output is wanted
}

// maxJobOutput bounds the output of a job that is read.
const maxJobOutput = 64 << 20

// runJob runs the job to its end and removes it, and returns its standard
// output when asked for. It fails with the node's reason and the job's
// last output when a task fails, and when the job has not ended within the
// runtime's JobTimeout (a node that is down holds its task).
func (r *Runtime) runJob(ctx context.Context, j job) (string, error) {
	labels := map[string]string{api.LabelManagedBy: api.ManagedByValue, labelJob: j.kind}
	if j.class != "" {
		labels[api.LabelClass] = j.class
		labels[api.LabelStudent] = j.student
	}
	one := uint64(1)
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "homeroom-job-" + j.kind + "-" + randomID(), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: r.opts.JobImage, Args: j.args, Labels: labels,
				Mounts: []mount.Mount{{Type: mount.TypeBind, Source: r.opts.NodeSocket, Target: "/var/run/docker.sock"}},
				Env:    []string{"HOMEROOM_NODE={{.Node.ID}}"}, // the swarm fills it in
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
		},
	}
	// Services that run once (restart condition none), not the swarm's
	// jobs: the daemon (20.10) leaves a removed job's containers on its
	// nodes, while a removed service's go with it.
	if j.global {
		spec.Mode = swarm.ServiceMode{Global: &swarm.GlobalService{}}
	} else {
		spec.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}}
		spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.id==" + j.node}}
	}
	var nodes []string // every node, which a global job must have run on
	if j.global {
		cctx, cancel := r.ctx(ctx)
		ns, err := r.api.NodeList(cctx, swarm.NodeListOptions{})
		cancel()
		r.Track("node_list", err)
		if err != nil {
			return "", fmt.Errorf("%s job: list nodes: %w", j.kind, err)
		}
		for _, n := range ns {
			if j.readyOnly && n.Status.State != swarm.NodeStateReady {
				continue
			}
			nodes = append(nodes, n.ID)
		}
		if j.readyOnly && len(nodes) == 0 {
			return "", nil // no node is ready: nothing to do it on
		}
	}
	defer r.use(spec.Name)()
	cctx, cancel := r.ctx(ctx)
	resp, err := r.api.ServiceCreate(cctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	cancel()
	r.Track("service_create", err)
	if err != nil {
		return "", fmt.Errorf("%s job: %w", j.kind, err)
	}
	defer func() {
		rctx, cancel := r.ctx(context.WithoutCancel(ctx))
		defer cancel()
		err := r.api.ServiceRemove(rctx, resp.ID)
		r.Track("service_remove", err)
	}()
	ctx, cancel = context.WithTimeout(ctx, r.opts.JobTimeout)
	defer cancel()
	var wait backoff
	for {
		ts, err := r.tasks(ctx, resp.ID)
		if err != nil {
			return "", err
		}
		waiting, ferr := jobWaiting(ts, nodes)
		if ferr != nil {
			return "", fmt.Errorf("%s job on node %s: %w%s", j.kind, ferr.node, ferr, r.jobOutput(ctx, resp.ID))
		}
		if len(waiting) == 0 {
			if !j.output {
				return "", nil
			}
			return r.jobStdout(ctx, resp.ID)
		}
		if wait.wait(ctx) != nil {
			return "", fmt.Errorf("%s job: not done after %s; waiting on %s", j.kind, r.opts.JobTimeout, strings.Join(waiting, ", "))
		}
	}
}

// SweepJobs removes the jobs a controller stopped while they ran (killed,
// or crashed) left behind, which nothing would remove: those that no call
// of this runtime runs, made before this runtime was (a job of another
// controller, leading a moment ago, may still be running).
func (r *Runtime) SweepJobs(ctx context.Context) (int, error) {
	cctx, cancel := r.ctx(ctx)
	svcs, err := r.api.ServiceList(cctx, swarm.ServiceListOptions{Filters: filters.NewArgs(
		filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue), filters.Arg("label", labelJob))})
	cancel()
	r.Track("service_list", err)
	if err != nil {
		return 0, fmt.Errorf("list jobs: %w", err)
	}
	n := 0
	for _, s := range svcs {
		if r.inUseNow(s.Spec.Name) || !s.Meta.CreatedAt.Before(r.started) {
			continue
		}
		if err := r.removeService(ctx, s.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

type taskError struct {
	node, reason string
}

func (e *taskError) Error() string { return e.reason }

// jobWaiting says what the job still waits on, nothing once it completed,
// or the first task that failed. A job on one node completes with its
// task; a global job, once every node's task has (a node that is down
// gets none, and is waited on).
func jobWaiting(ts []swarm.Task, nodes []string) ([]string, *taskError) {
	complete := map[string]bool{}
	var running []string
	for _, t := range ts {
		switch t.Status.State {
		case swarm.TaskStateComplete:
			complete[t.NodeID] = true
		case swarm.TaskStateFailed, swarm.TaskStateRejected:
			reason := t.Status.Err
			if reason == "" {
				reason = string(t.Status.State)
			}
			if cs := t.Status.ContainerStatus; cs != nil && cs.ExitCode != 0 {
				reason = fmt.Sprintf("%s (exit code %d)", reason, cs.ExitCode)
			}
			return nil, &taskError{node: t.NodeID, reason: reason}
		default:
			running = append(running, fmt.Sprintf("node %s (%s)", t.NodeID, t.Status.State))
		}
	}
	if nodes == nil {
		if len(complete) > 0 {
			return nil, nil
		}
		if len(running) == 0 {
			return []string{"the swarm to place it"}, nil
		}
		return running, nil
	}
	var waiting []string
	for _, n := range nodes {
		if !complete[n] {
			waiting = append(waiting, "node "+n)
		}
	}
	return waiting, nil
}

// jobStdout reads what the job's tasks wrote to their standard output.
func (r *Runtime) jobStdout(ctx context.Context, id string) (string, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	rc, err := r.api.ServiceLogs(cctx, id, container.LogsOptions{ShowStdout: true})
	r.Track("service_logs", err)
	if err != nil {
		return "", fmt.Errorf("output of job %s: %w", id, err)
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&limitWriter{w: &out, n: maxJobOutput}, io.Discard, rc); err != nil {
		return "", fmt.Errorf("output of job %s: %w", id, err)
	}
	return out.String(), nil
}

// limitWriter writes up to n bytes to w, and fails after.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("more than %d bytes of output", maxJobOutput)
	}
	l.n -= len(p)
	return l.w.Write(p)
}

// jobOutput is the failed job's last lines, for the reason.
func (r *Runtime) jobOutput(ctx context.Context, id string) string {
	out, err := r.LogTail(context.WithoutCancel(ctx), id, 5, 1024)
	if err != nil || strings.TrimSpace(out) == "" {
		return ""
	}
	return ": " + strings.TrimSpace(out)
}
