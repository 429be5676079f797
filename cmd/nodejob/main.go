// Command nodejob is the one-shot job Homeroom's Swarm runtime runs on a
// node: the manager's API cannot reach a volume on another node, so what
// must be done where a student's work is runs there, as a swarm job with
// that node's Docker socket.
//
//	nodejob collect -class C -student S -path P -image IMG -put URL
//	nodejob remove-volume -name NAME
//
// collect archives the student's work volume for P exactly as the Docker
// archive API gives it on a single host (a container that mounts the
// volume, never started, read through the archive API) and uploads the tar
// with one PUT to URL, a presigned address for one staging object: the job
// holds no credentials of the object store. The controller reads the tar
// back from the object store and collects it through its one collection
// path, which verifies every file.
//
// remove-volume removes a work volume on this node, where it has one. Both
// act only on volumes that carry Homeroom's labels (collect: for that class
// and student): a volume of the same name made by hand is never read or
// removed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/homeroom/homeroom/pkg/api"
)

// The job's own bounds: the controller also times the whole job out.
const (
	callTimeout   = 2 * time.Minute
	uploadTimeout = 30 * time.Minute
	// maxArchive bounds the staged tar: a workspace larger than this is
	// refused rather than filling the node's disk.
	maxArchive = 8 << 30
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nodejob collect|remove-volume [flags]")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "collect":
		err = collect(ctx, os.Args[2:])
	case "remove-volume":
		err = removeVolume(ctx, os.Args[2:])
	default:
		fmt.Fprintf(os.Stderr, "nodejob: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodejob:", err)
		os.Exit(1)
	}
}

func docker() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// ours reports whether v is the student's work volume.
func ours(v *volume.Volume, class, student string) bool {
	return v.Labels[api.LabelManagedBy] == api.ManagedByValue && v.Labels[api.LabelClass] == class && v.Labels[api.LabelStudent] == student
}

func collect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	class := fs.String("class", "", "class id")
	student := fs.String("student", "", "student id")
	path := fs.String("path", "", "the collect path the volume is mounted at in the sandbox")
	image := fs.String("image", "", "image of the container that mounts the volume (never started)")
	put := fs.String("put", "", "presigned URL the tar is uploaded to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *class == "" || *student == "" || *path == "" || *image == "" || *put == "" {
		return errors.New("collect needs -class, -student, -path, -image and -put")
	}
	d, err := docker()
	if err != nil {
		return err
	}
	defer d.Close()
	name := api.VolumeName(*class, *student, *path)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	v, err := d.VolumeInspect(cctx, name)
	cancel()
	if err != nil {
		// Mounting a missing volume would make an empty one, and an empty
		// archive would read as a student who wrote nothing.
		return fmt.Errorf("work volume %s on this node: %w", name, err)
	}
	if !ours(&v, *class, *student) {
		return fmt.Errorf("volume %s is not Homeroom's work volume of %s in %s: left alone", name, *student, *class)
	}
	holder := "homeroom-collect-" + name
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	_ = d.ContainerRemove(cctx, holder, container.RemoveOptions{Force: true}) // a killed job's
	resp, err := d.ContainerCreate(cctx, &container.Config{
		Image: *image, Cmd: []string{"true"}, NetworkDisabled: true,
		Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: *class, api.LabelRecovering: *student},
	}, &container.HostConfig{
		NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"}, ReadonlyRootfs: true,
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: *path, ReadOnly: true}},
	}, nil, nil, holder)
	cancel()
	if err != nil {
		return fmt.Errorf("create %s: %w", holder, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		defer cancel()
		_ = d.ContainerRemove(rctx, resp.ID, container.RemoveOptions{Force: true})
	}()

	// S3 wants the length before the body: stage the tar on disk first.
	tmp, err := os.CreateTemp("", "collect-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	actx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	rc, _, err := d.CopyFromContainer(actx, resp.ID, *path)
	if err != nil {
		return fmt.Errorf("archive %s: %w", *path, err)
	}
	n, err := io.Copy(tmp, io.LimitReader(rc, maxArchive+1))
	rc.Close()
	if err != nil {
		return fmt.Errorf("archive %s: %w", *path, err)
	}
	if n > maxArchive {
		return fmt.Errorf("archive %s: larger than %d bytes", *path, int64(maxArchive))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(actx, http.MethodPut, *put, tmp)
	if err != nil {
		return err
	}
	req.ContentLength = n
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("upload: %s: %s", res.Status, body)
	}
	fmt.Printf("collected %s: %d bytes\n", name, n)
	return nil
}

func removeVolume(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("remove-volume", flag.ContinueOnError)
	name := fs.String("name", "", "the work volume")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("remove-volume needs -name")
	}
	d, err := docker()
	if err != nil {
		return err
	}
	defer d.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := d.VolumeInspect(cctx, *name)
	if cerrdefs.IsNotFound(err) {
		return nil // not on this node
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", *name, err)
	}
	if v.Labels[api.LabelManagedBy] != api.ManagedByValue {
		return fmt.Errorf("volume %s is not Homeroom's: left alone", *name)
	}
	// The node's agent removes the container of a removed service at the
	// same time: a removal already in progress is waited for.
	for attempt := 1; ; attempt++ {
		err := removeWorkVolume(cctx, d, *name)
		if err == nil || !cerrdefs.IsConflict(err) || attempt == 20 {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// removeWorkVolume removes the stopped Homeroom containers that hold the
// volume, then the volume.
func removeWorkVolume(cctx context.Context, d *client.Client, name string) error {
	// The sandbox's container outlives its removed service for a moment,
	// stopped: that one goes first. A volume that a running container
	// mounts is refused: work never goes from under its sandbox.
	users, err := d.ContainerList(cctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", name))})
	if err != nil {
		return fmt.Errorf("containers using %s: %w", name, err)
	}
	for _, c := range users {
		if c.State == "running" || c.State == "restarting" || c.State == "paused" {
			return fmt.Errorf("volume %s is in use by %s, which is %s: left alone", name, c.Names, c.State)
		}
		if c.Labels[api.LabelManagedBy] != api.ManagedByValue {
			return fmt.Errorf("volume %s is used by %s, which is not Homeroom's: left alone", name, c.Names)
		}
		if err := d.ContainerRemove(cctx, c.ID, container.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove %s, stopped, which holds %s: %w", c.Names, name, err)
		}
	}
	if err := d.VolumeRemove(cctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	fmt.Println("removed", name)
	return nil
}
