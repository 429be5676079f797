package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// removeByHand is `docker rm -f`: the container goes, its named volumes stay.
func (d *fakeDocker) removeByHand(t *testing.T, name string) {
	t.Helper()
	d.mu.Lock()
	hook := d.beforeRemove
	d.beforeRemove = nil
	d.mu.Unlock()
	if err := d.RemoveContainer(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	d.beforeRemove = hook
	d.calls = nil
	d.mu.Unlock()
}

// write puts a file in a student's sandbox, as the student would.
func (d *fakeDocker) write(name, path, body string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lookup(name).files[path] = body
}

func (e *env) manifestOf(student string) artifacts.Manifest {
	e.t.Helper()
	ref := studentStatus(e.class(), student).Artifacts
	if ref == nil {
		e.t.Fatalf("%s not collected", student)
	}
	raw, ok := e.art.object(ref.Manifest)
	if !ok {
		e.t.Fatalf("%s's manifest not stored", student)
	}
	var m artifacts.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func paths(m artifacts.Manifest) []string {
	var out []string
	for _, f := range m.Files {
		out = append(out, f.Path)
	}
	slices.Sort(out)
	return out
}

// A sandbox removed by hand while Up is made again on the same work volume:
// what the student wrote before is there, and Down collects it.
func TestSandboxRemovedByHandIsMadeAgainOnItsWork(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	e.docker.write(cname("alice"), "workspace/essay.txt", "two pages")
	e.docker.removeByHand(t, cname("alice"))

	e.mustConverge() // drift repair: alice's sandbox again
	c, ok := e.docker.container(cname("alice"))
	if !ok || c.files["workspace/essay.txt"] != "two pages" {
		t.Fatalf("alice's sandbox made again without her essay: %v", c.files)
	}
	e.store.edit(classID, func(c *api.Class) { c.DesiredPhase = api.PhaseDown })
	e.mustConverge()
	if got := paths(e.manifestOf("alice")); !slices.Contains(got, "workspace/essay.txt") {
		t.Errorf("collected %v, want the essay", got)
	}
	if v := e.docker.volumeNames(); len(v) != 0 {
		t.Errorf("volumes left after Down: %v", v)
	}
}

// A sandbox removed by hand just before Down leaves its work volume
// stranded: Down collects it through a recovery container, then removes it.
func TestStrandedWorkIsCollectedAtDown(t *testing.T) {
	e := newEnv(t)
	e.bringUp("alice", "bob")
	e.docker.write(cname("bob"), "workspace/lab.py", "print(42)")
	e.docker.removeByHand(t, cname("bob"))

	res := e.mustConverge()
	run := e.class().Status.Run
	want := "begin-run\nstop-container alice (" + cname("alice") + ")\ncollect alice (" + cname("alice") + ")\nremove-container alice (" + cname("alice") + ")\n" +
		"collect-volumes bob (" + api.RecoveryName(classID, "bob") + ")\nremove-volumes bob\ndisconnect-traefik (" + netName + ")\nremove-network (" + netName + ")\ncomplete-run\n"
	if got := res.Plan.String(); got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	m := e.manifestOf("bob")
	if got := paths(m); !slices.Contains(got, "workspace/lab.py") || !slices.Contains(got, "workspace/main.py") {
		t.Errorf("bob's stranded work collected as %v", got)
	}
	if m.Template != "sandbox" || m.RunID != run.ID {
		t.Errorf("bob's manifest: template %q run %q", m.Template, m.RunID)
	}
	if v := e.docker.volumeNames(); len(v) != 0 {
		t.Errorf("volumes left after Down: %v", v)
	}
	if _, ok := e.docker.container(api.RecoveryName(classID, "bob")); ok {
		t.Errorf("the recovery container was left behind")
	}
}

// A crash between a sandbox's removal and its volumes' leaves them for the
// next pass, which removes them without collecting again.
func TestVolumesLeftByAFailedRemovalAreRemovedNotCollectedAgain(t *testing.T) {
	e := newEnv(t)
	e.bringUp("alice")
	e.docker.fail("RemoveVolume", api.VolumeName(classID, "alice", "/workspace"), 1)
	if _, err := e.pass(); err == nil {
		t.Fatal("pass succeeded although the volume could not be removed")
	}
	if _, ok := e.docker.container(cname("alice")); ok {
		t.Fatal("alice's container should be gone already")
	}
	manifests := e.art.manifests("alice")
	res := e.mustConverge()
	if got, want := res.Plan.String(), "remove-volumes alice\ndisconnect-traefik ("+netName+")\nremove-network ("+netName+")\ncomplete-run ("+e.class().Status.Run.ID+")\n"; got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	if n := e.art.manifests("alice"); n != manifests {
		t.Errorf("alice collected again: %d manifests, then %d", manifests, n)
	}
	if v := e.docker.volumeNames(); len(v) != 0 {
		t.Errorf("volumes left: %v", v)
	}
}

// A sandbox the daemon will not start again, because containerd kept a task
// for it, is replaced on the same work volumes: the student's work stays.
func TestSandboxWithAKeptTaskIsReplacedOnItsWork(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	e.docker.write(cname("alice"), "workspace/thesis.md", "chapter one")
	old, _ := e.docker.container(cname("alice"))
	e.docker.mu.Lock()
	c := e.docker.lookup(cname("alice"))
	c.state, c.taskKept = "exited", true
	e.docker.mu.Unlock()

	if _, err := e.pass(); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("first start: %v", err)
	}
	res := e.mustConverge()
	want := "replace-container alice (" + cname("alice") + ")\nstart-container alice (" + cname("alice") + ")\n"
	if got := res.Plan.String(); got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	now, ok := e.docker.container(cname("alice"))
	if !ok || now.id == old.id || now.state != "running" {
		t.Fatalf("alice's sandbox: present %v, id %s (was %s), state %s", ok, now.id, old.id, now.state)
	}
	if now.files["workspace/thesis.md"] != "chapter one" {
		t.Errorf("alice's work lost in the replacement: %v", now.files)
	}
	if ref := studentStatus(e.class(), "alice").Artifacts; ref != nil {
		t.Errorf("a replacement checkpointed alice as collected: %+v", ref)
	}
}

// A stranded student's work is collected by the template's rules, its
// excluded directories (a notebook's checkpoints) included: the recovery
// container's label carries them, since the collector keeps only the
// exclusions that label and template share.
func TestRecoveryKeepsTheTemplatesExclusions(t *testing.T) {
	rules := artifacts.Rules{Paths: []string{"/home/jovyan"}, ExcludeDirs: []string{".ipynb_checkpoints", "__pycache__"}}
	spec := reconcile.RecoverySpec(classID, "bob", "homeroom/notebook:test", "notebook", rules)
	merged := rules.Merge(artifacts.RulesFromLabels(spec.Config.Labels))
	if !slices.Equal(merged.ExcludeDirs, rules.ExcludeDirs) {
		t.Errorf("recovery collects with exclusions %q, want the template's %q", merged.ExcludeDirs, rules.ExcludeDirs)
	}
}

// lostPlace is the place (a swarm node's id) lose leaves volumes on.
const lostPlace = "n3"

// lose makes student's sandbox as a swarm reports one on a node lost for
// good: labelled with why and where, its work volumes left at lostPlace,
// which is down.
func (d *fakeDocker) lose(student, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.lookup(api.ContainerName(classID, student))
	c.labels[api.LabelLost] = why
	c.labels[api.LabelLostOn] = lostPlace
	if d.elsewhere == nil {
		d.elsewhere = map[string]map[string]*fakeVolume{}
	}
	if d.elsewhere[lostPlace] == nil {
		d.elsewhere[lostPlace] = map[string]*fakeVolume{}
	}
	for target, name := range c.mounts {
		// What the sandbox wrote there up to the loss.
		v := &fakeVolume{labels: d.volumes[name].labels, files: map[string]string{}}
		dir := strings.TrimPrefix(target, "/") + "/"
		for p, body := range c.files {
			if strings.HasPrefix(p, dir) {
				v.files[p] = body
			}
		}
		d.elsewhere[lostPlace][name] = v
		delete(d.volumes, name)
	}
	if d.lostWork == nil {
		d.lostWork = map[string]bool{}
	}
	d.lostWork[student] = true
}

// setPlace marks a place up or down.
func (d *fakeDocker) setPlace(place string, up bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.placesUp == nil {
		d.placesUp = map[string]bool{}
	}
	d.placesUp[place] = up
}

func (d *fakeDocker) PlacesUp(context.Context) (map[string]bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("PlacesUp", ""); err != nil {
		return nil, err
	}
	return maps.Clone(d.placesUp), nil
}

func (d *fakeDocker) RemoveVolumeOn(_ context.Context, place, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("RemoveVolumeOn", place+"/"+name); err != nil {
		return err
	}
	if !d.placesUp[place] {
		return fmt.Errorf("%s is down", place)
	}
	delete(d.elsewhere[place], name)
	return nil
}

// left is what the volumes at place hold, by path.
func (d *fakeDocker) left(place string) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for _, v := range d.elsewhere[place] {
		maps.Copy(out, v.files)
	}
	return out
}

// volumesFirst is a runtime that removes a collected sandbox's work volumes
// before the sandbox, as the swarm's does (reconcile.CollectedRemover):
// there only the sandbox tells where its volumes are.
type volumesFirst struct{ *fakeDocker }

func (d volumesFirst) RemoveCollected(ctx context.Context, name string, volumes []string) error {
	d.mu.Lock()
	err := d.record("RemoveCollected", d.targetOf(name))
	hook := d.beforeRemove
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for _, v := range volumes {
		d.mu.Lock()
		vol := d.volumes[v]
		d.mu.Unlock()
		if vol == nil {
			continue
		}
		if hook != nil {
			hook(v, vol.labels)
		}
		d.mu.Lock()
		delete(d.volumes, v)
		if c := d.lookup(name); c != nil {
			for target, m := range c.mounts {
				if m == v {
					delete(c.mounts, target)
				}
			}
		}
		d.mu.Unlock()
	}
	// Between the two removals, as a crash would stop it.
	d.mu.Lock()
	err = d.record("RemoveCollected-sandbox", d.targetOf(name))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.fakeDocker.RemoveContainer(ctx, name)
}

// Where the runtime removes a collected sandbox's volumes before the
// sandbox, a Down stopped between the two removals finds the sandbox on
// the next pass and removes it the same way: nothing is left, and nothing
// is collected twice.
func TestARemovalStoppedAfterTheVolumesEndsOnTheNextPass(t *testing.T) {
	e := newEnv(t)
	e.rec = e.reconciler(volumesFirst{e.docker})
	e.bringUp("alice", "bob")
	e.docker.fail("RemoveCollected-sandbox", cname("alice"), 1)
	if _, err := e.pass(); err == nil {
		t.Fatal("pass succeeded although alice's sandbox could not be removed")
	}
	if _, ok := e.docker.container(cname("alice")); !ok {
		t.Fatal("alice's sandbox is gone: the fault did not stop the removal between its two steps")
	}
	if v := e.docker.volumeNames(); slices.Contains(v, api.VolumeName(classID, "alice", "/workspace")) {
		t.Fatalf("alice's volume is still there: %v", v)
	}
	manifests := e.art.manifests("alice")
	e.mustConverge()
	if n := e.art.manifests("alice"); n != manifests {
		t.Errorf("alice collected again: %d manifests, then %d", manifests, n)
	}
	if v := e.docker.volumeNames(); len(v) != 0 {
		t.Errorf("volumes left: %v", v)
	}
	for _, st := range []string{"alice", "bob"} {
		if _, ok := e.docker.container(cname(st)); ok {
			t.Errorf("%s's sandbox is left", st)
		}
	}
	var removals []string
	for _, c := range e.docker.calls {
		if strings.HasPrefix(c, "RemoveContainer ") || strings.HasPrefix(c, "RemoveVolume ") {
			removals = append(removals, c)
		}
	}
	if len(removals) != 2 { // the fake's own two sandbox removals, inside RemoveCollected
		t.Errorf("the executor removed on its own as well: %v", removals)
	}
	if c := e.class(); c.Status.Phase != api.PhaseDown {
		t.Errorf("phase %s, want Down", c.Status.Phase)
	}
}
