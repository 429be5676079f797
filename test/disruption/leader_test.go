package disruption

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
)

const leaseTTL = 3 * time.Second

func waitLog(t *testing.T, p *testenv.Process, what string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.Output(), what) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log within %s:\n%s", what, timeout, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func containerIDs(t *testing.T, d *dockerx.Client, id string) map[string]string {
	t.Helper()
	cs, err := d.API().ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+id))})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range cs {
		out[c.Labels[api.LabelStudent]] = c.ID
	}
	return out
}

// Two controllers against one store: exactly one acts; when it dies, or is
// paused, the other takes over within the lease, and nothing is made twice.
func TestOneLeaderActs(t *testing.T) {
	d := testenv.Docker(t)
	bin := filepath.Join(testenv.BuildBinaries(t, "controller"), "controller")
	uri, db := testenv.StoreURI(t)
	st := testenv.OpenStore(t, uri, db)
	cfg := testenv.S3(t)
	env := []string{
		"HOMEROOM_MONGO_URI=" + uri, "HOMEROOM_MONGO_DATABASE=" + db,
		"HOMEROOM_S3_ENDPOINT=" + cfg.Endpoint, "HOMEROOM_S3_ACCESS_KEY=" + cfg.AccessKey,
		"HOMEROOM_S3_SECRET_KEY=" + cfg.SecretKey, "HOMEROOM_S3_BUCKET=" + cfg.Bucket,
		"HOMEROOM_TRAEFIK_CONTAINER=hr-disruption-no-router", "HOMEROOM_LOG_FORMAT=console",
	}
	start := func(name string) *testenv.Process {
		return testenv.StartProcess(t, bin, append(env, "HOMEROOM_CONTROLLER_LISTEN="+testenv.FreeAddr(t)),
			"-id", name, "-lease-ttl", leaseTTL.String(), "-poll", "100ms", "-resync", "2s")
	}
	const id = "leader-1"
	testenv.CleanupClass(t, d, id)
	testenv.CreateClass(t, st, id, "ann", "bo", "cat")

	a := start("ctl-a")
	waitLog(t, a, "became leader", 30*time.Second)
	b := start("ctl-b")
	testenv.SetPhase(t, st, id, api.PhaseUp)
	testenv.WaitPhase(t, st, id, api.PhaseUp, time.Minute)
	time.Sleep(leaseTTL) // b has had time to act, if it wrongly would
	if strings.Contains(b.Output(), "became leader") || strings.Contains(b.Output(), "executing plan") {
		t.Fatalf("the follower acted while the leader was alive:\n%s", b.Output())
	}
	before := containerIDs(t, d, id)
	if len(before) != 3 {
		t.Fatalf("%d containers, want 3", len(before))
	}

	// The leader dies: the follower takes over within the lease.
	a.Kill()
	killed := time.Now()
	waitLog(t, b, "became leader", leaseTTL+5*time.Second)
	t.Logf("took over %v after the leader was killed (lease %v)", time.Since(killed).Round(100*time.Millisecond), leaseTTL)
	time.Sleep(time.Second) // the new leader's first passes
	if after := containerIDs(t, d, id); len(after) != 3 || after["ann"] != before["ann"] || after["bo"] != before["bo"] || after["cat"] != before["cat"] {
		t.Fatalf("containers changed in the hand-over: %v -> %v", before, after)
	}

	// The new leader is paused: a third controller takes over, and the
	// paused one, woken, steps down before acting.
	c := start("ctl-c")
	b.Signal(syscall.SIGSTOP)
	waitLog(t, c, "became leader", leaseTTL+5*time.Second)
	if _, _, err := st.PutSpec(context.Background(), id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"ann", "bo", "cat", "dot"}}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitPhase(t, st, id, api.PhaseUp, time.Minute)
	mark := len(b.Output())
	b.Signal(syscall.SIGCONT)
	time.Sleep(leaseTTL)
	if woke := b.Output()[mark:]; strings.Contains(woke, "executing plan") {
		t.Errorf("the paused leader acted after waking:\n%s", woke)
	}
	if ids := containerIDs(t, d, id); len(ids) != 4 {
		t.Errorf("%d containers after the roster grew, want 4", len(ids))
	}
	testenv.SetPhase(t, st, id, api.PhaseDown)
	testenv.WaitPhase(t, st, id, api.PhaseDown, time.Minute)
	c.Stop()
	// A leader that stops gives its lease up, so that another need not wait
	// out the TTL: either it is released, or the other controller has
	// already taken it.
	holder, expires, err := st.LeaseHolder(context.Background(), "homeroom-controller")
	if err != nil || holder == "ctl-c" && expires.After(time.Now()) || holder != "ctl-c" && holder != "ctl-b" {
		t.Errorf("after the leader stopped: holder %q until %v (err %v), want ctl-c's lease released", holder, expires, err)
	}
	b.Stop()
}
