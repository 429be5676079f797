package main

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

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
