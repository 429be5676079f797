// Command nodejob is the one-shot job Homeroom's Swarm runtime runs on a
// node: the manager's API cannot reach a volume on another node, so what
// must be done where a student's work is runs there, as a swarm job with
// that node's Docker socket.
//
//	nodejob collect -class C -student S -path P -image IMG -put URL [-missing-ok]
//	nodejob restore -class C -student S -path P -template-image IMG -template T -get URL
//	nodejob remove-volume -name NAME
//	nodejob volume-sizes
//	nodejob wait
//
// collect archives the student's work volume for P exactly as the Docker
// archive API gives it on a single host (a container that mounts the
// volume, never started, read through the archive API) and uploads the tar
// with one PUT to URL, a presigned address for one staging object: the job
// holds no credentials of the object store. The controller reads the tar
// back from the object store and collects it through its one collection
// path, which verifies every file. With -missing-ok, a volume this node
// does not have is nothing left here, and an empty tar is uploaded: the
// volume a lost sandbox left on its node may never have been made, or may
// have gone with the node's disk.
//
// restore extracts a tar, downloaded through a presigned address, into the
// student's work volume before their sandbox starts (made from the
// sandbox's image first, as its first start would, when missing).
//
// remove-volume removes a work volume on this node, where it has one. Both
// act only on volumes that carry Homeroom's labels (collect: for that class
// and student): a volume of the same name made by hand is never read or
// removed.
//
// volume-sizes prints each of Homeroom's volumes on this node, one JSON
// object a line (api.NodeVolume): what the controller checks workspace
// caps against, as the daemon's disk usage report gives it on one host.
// The node's id comes from HOMEROOM_NODE, which the swarm fills in.
//
// wait does nothing until it is stopped: it is the placeholder that keeps
// a pool network set up on its node ahead of an Up. It is run without the
// Docker socket, as nobody, and answers nothing.
package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
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
		fmt.Fprintln(os.Stderr, "usage: nodejob collect|restore|remove-volume|volume-sizes|wait [flags]")
		os.Exit(2)
	}
	ctx := context.Background()
	var err error
	switch os.Args[1] {
	case "collect":
		err = collect(ctx, os.Args[2:])
	case "restore":
		err = restore(ctx, os.Args[2:])
	case "remove-volume":
		err = removeVolume(ctx, os.Args[2:])
	case "volume-sizes":
		err = volumeSizes(ctx, os.Args[2:], os.Stdout)
	case "wait":
		ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
		err = wait(ctx, os.Args[2:])
		stop()
	default:
		fmt.Fprintf(os.Stderr, "nodejob: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodejob:", err)
		os.Exit(1)
	}
}

// volumeSizes writes each of Homeroom's volumes on this node to w, with
// its size (the daemon walks every volume to answer).
func volumeSizes(ctx context.Context, args []string, w io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("volume-sizes takes no arguments, got %q", args)
	}
	d, err := docker()
	if err != nil {
		return err
	}
	defer d.Close()
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	du, err := d.DiskUsage(cctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	if err != nil {
		return fmt.Errorf("disk usage: %w", err)
	}
	enc := json.NewEncoder(w)
	node := os.Getenv("HOMEROOM_NODE")
	for _, v := range du.Volumes {
		if v == nil || v.Labels[api.LabelManagedBy] != api.ManagedByValue {
			continue
		}
		size := int64(-1)
		if v.UsageData != nil {
			size = v.UsageData.Size
		}
		if err := enc.Encode(api.NodeVolume{Node: node, Name: v.Name, Labels: v.Labels, Size: size}); err != nil {
			return err
		}
	}
	return nil
}

// wait returns, with no error, once ctx ends: a stop is its normal end.
func wait(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("wait takes no arguments, got %q", args)
	}
	<-ctx.Done()
	return nil
}

func docker() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// ours reports whether v is the student's work volume.
func ours(v *volume.Volume, class, student string) bool {
	return v.Labels[api.LabelManagedBy] == api.ManagedByValue && v.Labels[api.LabelClass] == class && v.Labels[api.LabelStudent] == student
}

// holder makes the container, never started, through which a student's
// work volume for path is read or written on this node, and returns it
// with what removes it. The volume must be Homeroom's for that student; a
// missing one is an error unless fresh, where the mount makes it as the
// sandbox's first start would: from templateImage's directory at path,
// with the labels the sandbox's own mount gives it.
func holder(ctx context.Context, d *client.Client, class, student, path, image, templateImage, template string, fresh, readOnly bool) (string, func(), error) {
	name := api.VolumeName(class, student, path)
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := d.VolumeInspect(cctx, name)
	switch {
	case err == nil:
		if !ours(&v, class, student) {
			return "", nil, fmt.Errorf("volume %s is not Homeroom's work volume of %s in %s: left alone", name, student, class)
		}
	case cerrdefs.IsNotFound(err) && fresh:
		if templateImage == "" || template == "" {
			return "", nil, errors.New("a fresh volume needs -template-image and -template")
		}
		image = templateImage
	default:
		// Mounting a missing volume would make an empty one, and an empty
		// archive would read as a student who wrote nothing.
		return "", nil, fmt.Errorf("work volume %s on this node: %w", name, err)
	}
	hname := "homeroom-holder-" + name
	_ = d.ContainerRemove(cctx, hname, container.RemoveOptions{Force: true}) // a killed job's
	resp, err := d.ContainerCreate(cctx, &container.Config{
		Image: image, Cmd: []string{"true"}, NetworkDisabled: true,
		Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class, api.LabelRecovering: student},
	}, &container.HostConfig{
		NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"}, ReadonlyRootfs: true,
		Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: name, Target: path, ReadOnly: readOnly,
			VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{
				api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class, api.LabelStudent: student,
				api.LabelCollectPath: path, api.LabelTemplate: template,
			}}}},
	}, nil, nil, hname)
	if err != nil {
		return "", nil, fmt.Errorf("create %s: %w", hname, err)
	}
	return resp.ID, func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
		defer cancel()
		_ = d.ContainerRemove(rctx, resp.ID, container.RemoveOptions{Force: true})
	}, nil
}

func collect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("collect", flag.ContinueOnError)
	class := fs.String("class", "", "class id")
	student := fs.String("student", "", "student id")
	path := fs.String("path", "", "the collect path the volume is mounted at in the sandbox")
	image := fs.String("image", "", "image of the container that mounts the volume (never started)")
	put := fs.String("put", "", "presigned URL the tar is uploaded to")
	fresh := fs.Bool("fresh", false, "the sandbox never started: a missing volume is made from -template-image")
	templateImage := fs.String("template-image", "", "with -fresh: the sandbox's image")
	template := fs.String("template", "", "with -fresh: the sandbox's template, for the volume's labels")
	missingOK := fs.Bool("missing-ok", false, "a missing volume is nothing left here: an empty tar is uploaded "+
		"(the volume a lost sandbox left on its node, which may never have been made, or went with the node's disk)")
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

	// S3 wants the length before the body: stage the tar on disk first.
	tmp, err := os.CreateTemp("", "collect-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	actx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	name := api.VolumeName(*class, *student, *path)
	var n int64
	if missing, err := volumeMissing(actx, d, name); err != nil {
		return err
	} else if missing && *missingOK && !*fresh {
		if err := tar.NewWriter(tmp).Close(); err != nil {
			return err
		}
		if n, err = tmp.Seek(0, io.SeekCurrent); err != nil {
			return err
		}
	} else {
		id, remove, err := holder(ctx, d, *class, *student, *path, *image, *templateImage, *template, *fresh, true)
		if err != nil {
			return err
		}
		defer remove()
		rc, _, err := d.CopyFromContainer(actx, id, *path)
		if err != nil {
			return fmt.Errorf("archive %s: %w", *path, err)
		}
		n, err = io.Copy(tmp, io.LimitReader(rc, maxArchive+1))
		rc.Close()
		if err != nil {
			return fmt.Errorf("archive %s: %w", *path, err)
		}
		if n > maxArchive {
			return fmt.Errorf("archive %s: larger than %d bytes", *path, int64(maxArchive))
		}
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

// volumeMissing reports whether this node has no volume named name.
func volumeMissing(ctx context.Context, d *client.Client, name string) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, err := d.VolumeInspect(cctx, name)
	switch {
	case cerrdefs.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("inspect %s: %w", name, err)
	}
	return false, nil
}

// restore downloads a tar through a presigned address and extracts it into
// the student's work volume for path, made first if the sandbox never ran.
func restore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	class := fs.String("class", "", "class id")
	student := fs.String("student", "", "student id")
	path := fs.String("path", "", "the collect path the volume is mounted at in the sandbox")
	templateImage := fs.String("template-image", "", "the sandbox's image, from which a new volume is made")
	template := fs.String("template", "", "the sandbox's template, for a new volume's labels")
	get := fs.String("get", "", "presigned URL of the tar")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *class == "" || *student == "" || *path == "" || *templateImage == "" || *template == "" || *get == "" {
		return errors.New("restore needs -class, -student, -path, -template-image, -template and -get")
	}
	d, err := docker()
	if err != nil {
		return err
	}
	defer d.Close()
	actx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	tmp, err := os.CreateTemp("", "restore-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, *get, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("download: %s: %s", res.Status, body)
	}
	n, err := io.Copy(tmp, io.LimitReader(res.Body, maxArchive+1))
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	if n > maxArchive {
		return fmt.Errorf("download: larger than %d bytes", int64(maxArchive))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	id, remove, err := holder(ctx, d, *class, *student, *path, *templateImage, *templateImage, *template, true, false)
	if err != nil {
		return err
	}
	defer remove()
	if err := d.CopyToContainer(actx, id, *path, tmp, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("extract into %s: %w", *path, err)
	}
	fmt.Printf("restored %d bytes into %s\n", n, api.VolumeName(*class, *student, *path))
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
