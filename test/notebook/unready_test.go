package notebook

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

// A sandbox that runs but never answers its readiness check is not counted
// as running: past the check's timeout the class says which student and
// why, with the sandbox's own last log lines, and it never reports Up.
func TestSandboxThatNeverAnswersIsReported(t *testing.T) {
	d := testenv.Docker(t)
	st := testenv.Store(t)
	art, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	// The lab image answers 404 on a path it does not serve.
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: ` + testenv.SandboxImage + `, port: 8080, user: "65534:65534", collectPaths: [/workspace],
     memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true, readiness: {path: /no-such-page, timeoutSeconds: 2}}
`))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	rec := reconcile.New(st, d, art, pol, reconcile.Options{Domain: domain, TraefikContainer: "hr-unready-no-router"}, log)
	ctl := controller.New(rec, st, d, controller.Options{PollInterval: 100 * time.Millisecond, ResyncInterval: time.Hour}, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const id = "nb-unready"
	testenv.CleanupClass(t, d, id)
	testenv.CreateClass(t, st, id, "alice")
	testenv.SetPhase(t, st, id, api.PhaseUp)
	deadline := time.Now().Add(2 * time.Minute)
	var c *api.Class
	for {
		c, err = st.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status.Phase == api.PhaseUp {
			t.Fatal("the class reports Up with a sandbox that never answered")
		}
		if len(c.Status.Students) == 1 && c.Status.Students[0].State == api.StateUnready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice never reported unready: %+v", c.Status.Students)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s := c.Status.Students[0]
	for _, want := range []string{"GET /no-such-page", "within 2 s", "404", "sandbox of alice in class " + id + " serving"} {
		if !strings.Contains(s.Message, want) {
			t.Errorf("alice's message lacks %q:\n%s", want, s.Message)
		}
	}
	rd := api.FindCondition(c.Status.Conditions, api.ConditionReady)
	if rd == nil || rd.Status != "False" || rd.Reason != "StudentsNotReady" || !strings.Contains(rd.Message, "0 of 1 students ready") {
		t.Errorf("Ready = %+v", rd)
	}
	t.Logf("alice: %s", s.Message)

	testenv.SetPhase(t, st, id, api.PhaseDown)
	testenv.WaitPhase(t, st, id, api.PhaseDown, time.Minute)
}
