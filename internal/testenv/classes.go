package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// WaitPhase waits until the controller reports the class in phase for its
// latest generation, and returns it.
func WaitPhase(t testing.TB, st *store.Store, id string, phase api.Phase, timeout time.Duration) *api.Class {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var c *api.Class
	var err error
	for time.Now().Before(deadline) {
		c, err = st.Get(context.Background(), id)
		if err == nil && c.Status.Phase == phase && c.Status.ObservedGeneration == c.Generation {
			return c
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("class %s never reached %s (last: %+v, err %v)", id, phase, c, err)
	return nil
}

// SetPhase sets a class's desired phase, as the apiserver does.
func SetPhase(t testing.TB, st *store.Store, id string, phase api.Phase) {
	t.Helper()
	if _, err := st.SetDesiredPhase(context.Background(), id, phase); err != nil {
		t.Fatal(err)
	}
}

// CreateClass writes a class of the sandbox template, removing whatever an
// earlier run of the test left of it in Docker.
func CreateClass(t testing.TB, st *store.Store, id string, students ...string) {
	t.Helper()
	if _, _, err := st.PutSpec(context.Background(), id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students}); err != nil {
		t.Fatal(err)
	}
}
