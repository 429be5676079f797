// Package routing checks, through a real Traefik, that the endpoint a teacher
// hands a student reaches that student's sandbox and nothing else does.
package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

const domain = "lab.test"

type sandboxAnswer struct {
	Class, Student string
	Files          []string
}

// ask requests path from a student's endpoint through Traefik until it
// answers with status want (Traefik applies new routes within a second or so).
func ask(t *testing.T, tr *testenv.Traefik, host, path string, want int) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := tr.Get(host, path)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return body
			}
			last = resp.Status + " " + string(body)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s%s through Traefik never answered %d; last: %s", host, path, want, last)
	return nil
}

// reachable reports whether a program on network can open url, as a
// student's program there could try to.
func reachable(t *testing.T, d *dockerx.Client, network, url string) bool {
	t.Helper()
	return testenv.Probe(t, d, network, url, "") != 1
}

func ipOn(t *testing.T, d *dockerx.Client, name, network string) string {
	t.Helper()
	info, err := d.InspectContainer(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info.NetworkSettings.Networks[network].IPAddress
}

func TestRoutingThroughTraefik(t *testing.T) {
	d := testenv.Docker(t)
	tr := testenv.StartTraefik(t, d)
	st := testenv.Store(t)
	art, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t)
	rec := reconcile.New(st, d, art, policy.Default(), reconcile.Options{Domain: domain, TraefikContainer: tr.Name}, log)
	ctl := controller.New(rec, st, d, controller.Options{
		PollInterval: 100 * time.Millisecond, ResyncInterval: time.Hour, Router: tr.Name,
	}, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const a, b = "route-a", "route-b"
	testenv.CleanupClass(t, d, a)
	testenv.CleanupClass(t, d, b)
	testenv.CreateClass(t, st, a, "alice", "bob", "carol")
	testenv.CreateClass(t, st, b, "alice", "dan")
	testenv.SetPhase(t, st, a, api.PhaseUp)
	testenv.SetPhase(t, st, b, api.PhaseUp)
	ca := testenv.WaitPhase(t, st, a, api.PhaseUp, time.Minute)
	testenv.WaitPhase(t, st, b, api.PhaseUp, time.Minute)
	if c := api.FindCondition(ca.Status.Conditions, api.ConditionRouting); c == nil || c.Status != "True" {
		t.Errorf("RoutingAvailable = %+v", c)
	}

	check := func(class, student string) {
		t.Helper()
		var got sandboxAnswer
		body := ask(t, tr, api.Host(class, student, domain), "/", http.StatusOK)
		if err := json.Unmarshal(body, &got); err != nil || got.Class != class || got.Student != student {
			t.Errorf("%s.%s answered %s", student, class, body)
		}
	}
	t.Run("each student reaches their own sandbox", func(t *testing.T) {
		for _, s := range []string{"alice", "bob", "carol"} {
			check(a, s)
		}
		// Same student id in another class: a different sandbox.
		check(b, "alice")
		check(b, "dan")
		ask(t, tr, api.Host(a, "dan", domain), "/", http.StatusNotFound)
	})

	report := []byte("# Lab report\nrouted through Traefik\n")
	t.Run("a student saves a file through their endpoint", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, "http://"+tr.Addr+"/files/report.md", bytes.NewReader(report))
		req.Host = api.Host(a, "alice", domain)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("save: %s", resp.Status)
		}
	})

	t.Run("sandboxes reach neither classmates nor other classes by IP", func(t *testing.T) {
		netA, netB := api.NetworkName(a), api.NetworkName(b)
		bob := "http://" + ipOn(t, d, api.ContainerName(a, "bob"), netA) + ":8080/"
		if resp, err := http.Get(bob); err != nil {
			t.Fatalf("bob's sandbox does not answer even the host: %v", err)
		} else {
			resp.Body.Close()
		}
		if reachable(t, d, netA, bob) {
			t.Error("a container reached its classmate's sandbox by IP, around Traefik")
		}
		if reachable(t, d, netA, "http://"+ipOn(t, d, api.ContainerName(b, "dan"), netB)+":8080/") {
			t.Error("a container of one class reached a container of another class")
		}
	})

	t.Run("a replaced Traefik routes every class again", func(t *testing.T) {
		tr.Remove()
		tr.Start()
		check(a, "carol")
		check(b, "dan")
	})

	t.Run("after Down the host is gone and the work is kept", func(t *testing.T) {
		testenv.SetPhase(t, st, a, api.PhaseDown)
		testenv.WaitPhase(t, st, a, api.PhaseDown, time.Minute)
		ask(t, tr, api.Host(a, "alice", domain), "/", http.StatusNotFound)
		check(b, "alice") // the other class is untouched
		item, err := art.LatestFile(context.Background(), a, "alice", "files/workspace/report.md")
		if err != nil {
			t.Fatal(err)
		}
		rc, _, err := art.Open(context.Background(), item.Key)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, report) {
			t.Errorf("collected %q, saved %q", got, report)
		}
	})

	testenv.SetPhase(t, st, b, api.PhaseDown)
	testenv.WaitPhase(t, st, b, api.PhaseDown, time.Minute)
}
