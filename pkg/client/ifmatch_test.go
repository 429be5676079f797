package client_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/homeroom/homeroom/pkg/client"
)

func TestPutClassIfVersion(t *testing.T) {
	url, _, _ := newServer(t)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	spec := client.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice", "bob"}}

	// If-Match never creates.
	for _, v := range []int64{client.AnyVersion, 1} {
		_, err := c.PutClassIfVersion(ctx, "cs101-a", spec, v)
		apiError(t, err, http.StatusPreconditionFailed, "precondition_failed")
		if !client.IsPreconditionFailed(err) {
			t.Errorf("IsPreconditionFailed(%v) = false", err)
		}
		if cur, ok := client.CurrentVersion(err); ok {
			t.Errorf("a missing class has a current version %d", cur)
		}
	}
	if _, _, err := c.PutClass(ctx, "cs101-a", spec); err != nil {
		t.Fatal(err)
	}
	loaded, err := c.GetClass(ctx, "cs101-a")
	if err != nil {
		t.Fatal(err)
	}

	mine := spec
	mine.Students = []string{"alice", "bob", "carol"}
	saved, err := c.PutClassIfVersion(ctx, "cs101-a", mine, loaded.Version)
	if err != nil || saved.Version != loaded.Version+1 || !slices.Equal(saved.Spec.Students, mine.Students) {
		t.Fatalf("fresh version: %+v, %v", saved, err)
	}
	theirs := spec
	theirs.TTLSeconds = 600
	_, err = c.PutClassIfVersion(ctx, "cs101-a", theirs, loaded.Version)
	apiError(t, err, http.StatusPreconditionFailed, "precondition_failed")
	if cur, ok := client.CurrentVersion(err); !ok || cur != saved.Version {
		t.Errorf("CurrentVersion = %d, %v; want %d", cur, ok, saved.Version)
	}
	if client.IsPreconditionFailed(nil) || client.IsPreconditionFailed(&client.Error{Status: 409}) {
		t.Error("IsPreconditionFailed of something else")
	}
	got, err := c.GetClass(ctx, "cs101-a")
	if err != nil || got.Version != saved.Version || got.Spec.TTLSeconds != 0 {
		t.Fatalf("the refused write changed the class: %+v, %v", got, err)
	}

	anyV, err := c.PutClassIfVersion(ctx, "cs101-a", theirs, client.AnyVersion)
	if err != nil || anyV.Spec.TTLSeconds != 600 {
		t.Fatalf("AnyVersion on an existing class: %+v, %v", anyV, err)
	}
}
