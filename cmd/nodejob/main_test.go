package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/pkg/api"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// A collection of a volume this node does not have fails, since an empty
// archive would read as a student who wrote nothing; with -missing-ok (the
// volume a lost sandbox left, which may be gone) it uploads an empty tar:
// nothing was left here.
func TestCollectOfAMissingVolume(t *testing.T) {
	testenv.Docker(t)
	ctx := context.Background()
	cfg := testenv.S3(t)
	store, err := artifacts.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureBucket(ctx); err != nil {
		t.Fatal(err)
	}
	args := func(key string, extra ...string) []string {
		url, err := store.PresignPut(ctx, key, time.Minute, "")
		if err != nil {
			t.Fatal(err)
		}
		return append([]string{"-class", "nodejob-test", "-student", "nobody", "-path", "/workspace", "-image", "homeroom/nodejob:dev", "-put", url}, extra...)
	}

	err = collect(ctx, args("staging/without.tar"))
	if err == nil || !strings.Contains(err.Error(), "work volume") {
		t.Errorf("collecting a missing volume: %v, want it refused", err)
	}
	if _, _, err := store.Open(ctx, "staging/without.tar"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("something was uploaded for a refused collection: %v", err)
	}

	if err := collect(ctx, args("staging/missing-ok.tar", "-missing-ok")); err != nil {
		t.Fatalf("collecting a missing volume with -missing-ok: %v", err)
	}
	rc, _, err := store.Open(ctx, "staging/missing-ok.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if h, err := tar.NewReader(rc).Next(); err != io.EOF {
		t.Errorf("the uploaded tar holds %+v (%v), want no entry", h, err)
	}
}

// The placeholder waits until it is stopped, and a stop is no failure.
func TestWaitEndsCleanlyWhenStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- wait(ctx, nil) }()
	select {
	case err := <-done:
		t.Fatalf("wait returned before it was stopped: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("wait stopped: %v, want no error", err)
	}
	if err := wait(ctx, []string{"-x"}); err == nil {
		t.Error("wait with an argument: no error")
	}
}

// The measuring job reports Homeroom's volumes on its node, with the
// node's id and each one's labels and size, and no volume of anyone else.
func TestVolumeSizesReportsHomeroomsVolumesOnly(t *testing.T) {
	testenv.Docker(t)
	ctx := context.Background()
	d, err := docker()
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	ours, theirs := "homeroom-vs-test-"+suffix, "not-homeroom-vs-test-"+suffix
	for name, labels := range map[string]map[string]string{
		ours:   {api.LabelManagedBy: api.ManagedByValue, api.LabelClass: "vs", api.LabelStudent: "alice"},
		theirs: {"owner": "someone else"},
	} {
		if _, err := d.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.VolumeRemove(context.Background(), name, true) })
	}
	t.Setenv("HOMEROOM_NODE", "node-x")
	var out strings.Builder
	if err := volumeSizes(ctx, nil, &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.Lines(out.String()) {
		var v api.NodeVolume
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if v.Name == theirs || v.Labels[api.LabelManagedBy] != api.ManagedByValue {
			t.Errorf("reported a volume that is not Homeroom's: %+v", v)
		}
		if v.Name == ours {
			found = true
			if v.Node != "node-x" || v.Labels[api.LabelStudent] != "alice" || v.Size < 0 {
				t.Errorf("reported %+v, want node-x, alice's labels and a size", v)
			}
		}
	}
	if !found {
		t.Errorf("%s not reported in:\n%s", ours, out.String())
	}
}
