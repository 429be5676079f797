package main

// Grading a run: how long Homeroom takes to grade a Down run of a class
// with the example file grader, next to running the same grader containers
// on the same inputs directly, in the same run.
//
// Homeroom: the real apiserver and controller; a class of N sandboxes, each
// with an answer file, taken Down (its first grading, untimed, is waited
// out); then POST …/runs/{run}/grade, timed until the class's Graded
// condition says every student of that attempt has an outcome.
//
// Directly: the same container spec (grading.Spec), the same files in the
// same layout, at most grading.DefaultParallel graders at once as Homeroom
// runs them: for each student, create, copy the files in, start, wait, read
// /grade/grade.json, remove. Pairs alternate the two.

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/grading"
	"github.com/homeroom/homeroom/pkg/policy"
	"golang.org/x/sync/errgroup"
)

type grOptions struct {
	students int
	pairs    int
}

// grTarget bounds the median ratio, Homeroom over running the graders
// directly.
const grTarget = 1.2

const graderImage = "homeroom/grader-file:dev"

// gradingPolicy is benchPolicy's sandbox with the example grader.
const gradingPolicy = `templates:
  - name: sandbox
    image: homeroom/sandbox:dev
    port: 8080
    user: "65534:65534"
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
    readOnlyRootFS: true
    internet: false
    grader:
      image: ` + graderImage + `
      command: [/grader-file, --expect, workspace/answer.txt=42]
defaults:
  maxStudentsPerClass: 500
  maxClassesUp: 20
  maxContainers: 2000
  maxCPUs: 1000
  maxMemoryMiB: 256000
`

type grPair struct{ home, direct time.Duration }

type grResult struct {
	o     grOptions
	pairs []grPair
	took  time.Duration
}

// answerOf is what each student hands in: half right, half wrong.
func answerOf(i int) string {
	if i%2 == 0 {
		return "42\n"
	}
	return "41\n"
}

func gradingCost(ctx context.Context, o options, d *dockerx.Client) (*grResult, error) {
	begin := time.Now()
	if _, err := d.API().ImageInspect(ctx, graderImage); err != nil {
		return nil, fmt.Errorf("image %s (make images builds it): %w", graderImage, err)
	}
	pol, err := policy.Parse([]byte(gradingPolicy))
	if err != nil {
		return nil, err
	}
	tmpl, _ := pol.Template("sandbox")
	sys, err := startSystem(ctx, o, sysConfig{controller: true, policy: gradingPolicy})
	if err != nil {
		return nil, err
	}
	defer sys.stop()
	n := o.gr.students
	id := fmt.Sprintf("bench-grade-%d", time.Now().Unix()%100000)
	students := roster(n)
	if err := sys.api.putClass(ctx, id, students); err != nil {
		return nil, err
	}
	defer sys.api.deleteClass(context.WithoutCancel(ctx), id)
	if _, err := sys.api.upAndWait(ctx, id, n); err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	if err := writeAnswers(ctx, d, id, students, tmpl.Port); err != nil {
		return nil, err
	}
	if _, err := sys.api.downAndWait(ctx, id, n, 1); err != nil {
		return nil, fmt.Errorf("down: %w", err)
	}
	var cl api.Class
	if _, err := sys.api.call(ctx, http.MethodGet, "/api/v1/classes/"+id, nil, &cl); err != nil {
		return nil, err
	}
	run := cl.Status.Run.ID
	if _, err := waitGraded(ctx, sys, id, 1, time.Now()); err != nil {
		return nil, fmt.Errorf("first grading: %w", err)
	}
	r := &grResult{o: o.gr}
	for p := 0; p < o.gr.pairs; p++ {
		var pair grPair
		settle(ctx)
		if pair.direct, err = gradeDirectly(ctx, d, id, run, students, tmpl.Grader); err != nil {
			return nil, fmt.Errorf("directly: %w", err)
		}
		settle(ctx)
		start := time.Now()
		var book api.Gradebook
		if _, err := sys.api.call(ctx, http.MethodPost, "/api/v1/classes/"+id+"/runs/"+run+"/grade", nil, &book); err != nil {
			return nil, err
		}
		if pair.home, err = waitGraded(ctx, sys, id, book.Attempt, start); err != nil {
			return nil, err
		}
		if _, err := sys.api.call(ctx, http.MethodGet, "/api/v1/classes/"+id+"/runs/"+run+"/grades", nil, &book); err != nil {
			return nil, err
		}
		for i, it := range book.Items {
			want := 0.0
			if answerOf(i) == "42\n" {
				want = 1
			}
			if it.State != api.GradeGraded || it.Score == nil || *it.Score != want {
				return nil, fmt.Errorf("attempt %d: %s got %+v, want a score of %g", book.Attempt, it.Student, it, want)
			}
		}
		r.pairs = append(r.pairs, pair)
		fmt.Fprintf(os.Stderr, "grading: pair %d of %d: %.2f s through Homeroom, %.2f s directly: %.2f×\n",
			p+1, o.gr.pairs, pair.home.Seconds(), pair.direct.Seconds(), ratio(pair.home, pair.direct))
	}
	r.took = time.Since(begin)
	return r, nil
}

// waitGraded waits for the class's Graded condition to report attempt
// done, and returns the time since start.
func waitGraded(ctx context.Context, sys *system, id string, attempt int, start time.Time) (time.Duration, error) {
	want := fmt.Sprintf("(attempt %d)", attempt)
	return sys.api.follow(ctx, id, start, func(cl *api.Class) bool {
		g := api.FindCondition(cl.Status.Conditions, api.ConditionGraded)
		return g != nil && g.Reason != "Grading" && strings.HasSuffix(g.Message, want)
	})
}

func writeAnswers(ctx context.Context, d *dockerx.Client, id string, students []string, port int) error {
	client := &http.Client{Timeout: 30 * time.Second}
	var g errgroup.Group
	g.SetLimit(16)
	for i, s := range students {
		g.Go(func() error {
			info, err := d.InspectContainer(ctx, api.ContainerName(id, s))
			if err != nil {
				return err
			}
			ip := info.NetworkSettings.Networks[api.NetworkName(id)].IPAddress
			url := "http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/files/answer.txt"
			return putFile(ctx, client, url, []byte(answerOf(i)))
		})
	}
	return g.Wait()
}

// gradeDirectly runs the grader on every student's answer with the
// daemon alone, as many at once as Homeroom runs.
func gradeDirectly(ctx context.Context, d *dockerx.Client, classID, runID string, students []string, gr *policy.Grader) (time.Duration, error) {
	tars := make([][]byte, len(students))
	for i := range students {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		now := time.Now()
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "grade/", Mode: 0o700, Uid: gr.UID(), Gid: gr.GID(), ModTime: now})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "submission/", Mode: 0o555, ModTime: now})
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "submission/workspace/", Mode: 0o555, ModTime: now})
		body := answerOf(i)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "submission/workspace/answer.txt", Mode: 0o444, Size: int64(len(body)), ModTime: now})
		io.WriteString(tw, body)
		tw.Close()
		tars[i] = b.Bytes()
	}
	g := &api.Grading{ClassID: classID, RunID: runID, Attempt: 1}
	start := time.Now()
	var eg errgroup.Group
	eg.SetLimit(grading.DefaultParallel)
	for i, s := range students {
		eg.Go(func() error {
			spec := grading.Spec(g, s, gr, "homeroom-bench-grade-"+s)
			spec.Config.Labels = map[string]string{benchLabel: "raw"}
			id, err := d.CreateFresh(ctx, spec)
			if err != nil {
				return err
			}
			defer d.RemoveContainer(context.WithoutCancel(ctx), id)
			if err := d.CopyTo(ctx, id, "/", bytes.NewReader(tars[i])); err != nil {
				return err
			}
			if err := d.StartContainer(ctx, id); err != nil {
				return err
			}
			if code, err := d.Wait(ctx, id); err != nil || code != 0 {
				return fmt.Errorf("grader of %s: exit %d, %v", s, code, err)
			}
			rc, err := d.Archive(ctx, id, grading.GradeFile)
			if err != nil {
				return err
			}
			defer rc.Close()
			tr := tar.NewReader(rc)
			if _, err := tr.Next(); err != nil {
				return err
			}
			b, err := io.ReadAll(io.LimitReader(tr, grading.MaxGradeBytes))
			if err != nil {
				return err
			}
			_, err = grading.Parse(b)
			return err
		})
	}
	err := eg.Wait()
	return time.Since(start), err
}

func (r *grResult) report(w io.Writer, machine string) {
	fmt.Fprintf(w, "\nGrading a run of %d students with the example file grader (%s)\n\n", r.o.students, machine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "  pair\tHomeroom s\tdirectly s\tHomeroom/directly\t")
	var ratios []float64
	for i, p := range r.pairs {
		ratios = append(ratios, ratio(p.home, p.direct))
		fmt.Fprintf(tw, "  %d\t%.2f\t%.2f\t%.2f×\t\n", i+1, p.home.Seconds(), p.direct.Seconds(), ratio(p.home, p.direct))
	}
	tw.Flush()
	sp := spreadOf(ratios)
	fmt.Fprintf(w, "\nHomeroom/directly: median %s over %d pairs\nThe grading part took %s.\n", sp, len(r.pairs), r.took.Round(time.Second))
	fmt.Fprintf(w, `
Homeroom: from POST …/runs/{run}/grade to the class's Graded condition reporting that attempt
done (every student graded), with the controller running %d graders at once. Directly: the same
container spec and files, %d graders at once: create, copy in, start, wait, read grade.json,
remove. Each pair measures directly, then Homeroom.
`, grading.DefaultParallel, grading.DefaultParallel)
	fmt.Fprintln(w, "\nTargets:")
	verdict := "PASS"
	if sp.median > grTarget {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  %s  grading a run of %d within %.2f× running the graders directly: %s%s\n", verdict, r.o.students, grTarget, sp, sp.note(grTarget))
}
