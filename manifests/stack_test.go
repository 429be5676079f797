package manifests

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const stackPath = "stack.yaml"

func loadStack(t *testing.T) composeFile {
	t.Helper()
	return loadComposeFile(t, stackPath)
}

// The stack runs Homeroom's own services on its control node, and the
// controller on a manager with the Swarm runtime.
func TestStackServicesAndPlacement(t *testing.T) {
	c := loadStack(t)
	for _, name := range []string{"mongo", "minio", "apiserver", "controller"} {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("no service %q", name)
			continue
		}
		if s.Deploy == nil || !slices.Contains(s.Deploy.Placement.Constraints, "node.labels.homeroom-control == true") {
			t.Errorf("%s: not placed on the control node (node.labels.homeroom-control == true): %+v", name, s.Deploy)
		}
		if s.Build != nil {
			t.Errorf("%s: builds; docker stack deploy does not build", name)
		}
		if tag := imageTag(s.Image); tag == "" || tag == "latest" || strings.Contains(tag, "$") {
			t.Errorf("%s: image %q is not pinned to a tag", name, s.Image)
		}
	}
	if _, ok := c.Services["traefik"]; ok {
		t.Errorf("traefik is a service; the controller can attach only a plain container to class networks")
	}
	ctl := c.Services["controller"]
	if !slices.Contains(ctl.Deploy.Placement.Constraints, "node.role == manager") {
		t.Errorf("controller: not on a manager: %v", ctl.Deploy.Placement.Constraints)
	}
	if ctl.Environment["HOMEROOM_RUNTIME"] != "swarm" {
		t.Errorf("controller: HOMEROOM_RUNTIME=%q, want swarm", ctl.Environment["HOMEROOM_RUNTIME"])
	}
	if ctl.Environment["HOMEROOM_TRAEFIK_CONTAINER"] != traefikName {
		t.Errorf("controller: HOMEROOM_TRAEFIK_CONTAINER=%q, want %s (the name the file's instructions give Traefik)", ctl.Environment["HOMEROOM_TRAEFIK_CONTAINER"], traefikName)
	}
	for name, s := range c.Services {
		socket := slices.ContainsFunc(s.Volumes, func(m mount) bool { return m.Source == dockerSocket })
		if socket != (name == "controller") {
			t.Errorf("%s: Docker socket mounted %v; only the controller has it", name, socket)
		}
	}
}

// What the nodes and Traefik must reach is published on the control
// node's own address, not through the routing mesh on every node.
func TestStackPublishesOnTheControlNode(t *testing.T) {
	c := loadStack(t)
	want := map[string]string{"apiserver": "8080", "minio": "9000"}
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if p.Mode != "host" {
				t.Errorf("%s: port %s published in mode %q; want host (the control node's address)", name, p.Target, p.Mode)
			}
			if want[name] != p.Target {
				t.Errorf("%s: publishes %s", name, p.Target)
			}
		}
	}
	for name, port := range want {
		if len(c.Services[name].Ports) != 1 {
			t.Errorf("%s: want %s published once, got %+v", name, port, c.Services[name].Ports)
		}
	}
	ctl := c.Services["controller"].Environment
	addr := regexp.MustCompile(`^\$\{HOMEROOM_CONTROL_ADDR:\?[^}]+\}`)
	if v := ctl["HOMEROOM_SIGNIN_CHECK_URL"]; !strings.HasPrefix(v, "http://") || !addr.MatchString(strings.TrimPrefix(v, "http://")) || !strings.HasSuffix(v, ":8080") {
		t.Errorf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q; want http://${HOMEROOM_CONTROL_ADDR:?…}:8080", v)
	}
	if v := ctl["HOMEROOM_SWARM_STORE_ENDPOINT"]; !addr.MatchString(v) || !strings.HasSuffix(v, ":9000") {
		t.Errorf("controller: HOMEROOM_SWARM_STORE_ENDPOINT=%q; want ${HOMEROOM_CONTROL_ADDR:?…}:9000", v)
	}
}

func TestStackSecretsAndStores(t *testing.T) {
	c := loadStack(t)
	for name, vars := range map[string][]string{
		"apiserver":  {"HOMEROOM_ADMIN_TOKEN", "HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_S3_SECRET_KEY"},
		"controller": {"HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_S3_SECRET_KEY"},
		"minio":      {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
	} {
		for _, v := range vars {
			if val := c.Services[name].Environment[v]; !requiredVar.MatchString(val) {
				t.Errorf("%s: %s=%q; want a required variable, ${NAME:?message}", name, v, val)
			}
		}
	}
	api, ctl := c.Services["apiserver"].Environment, c.Services["controller"].Environment
	for _, v := range []string{"HOMEROOM_MONGO_URI", "HOMEROOM_S3_ENDPOINT", "HOMEROOM_S3_BUCKET", "HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_DOMAIN"} {
		if api[v] == "" || api[v] != ctl[v] {
			t.Errorf("%s: apiserver %q, controller %q; they must agree", v, api[v], ctl[v])
		}
	}
	if _, ok := ctl["HOMEROOM_ADMIN_TOKEN"]; ok {
		t.Errorf("controller: has HOMEROOM_ADMIN_TOKEN; it serves no API")
	}
	documented := readmeConfigVariables(t)
	for name, s := range c.Services {
		for v := range s.Environment {
			if strings.HasPrefix(v, "HOMEROOM_") && !documented[v] {
				t.Errorf("%s: %s is not in README.md's Configuration table", name, v)
			}
		}
	}
}

// docker stack config reads the file as docker stack deploy would, and
// refuses it without each required variable.
func TestStackConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker command")
	}
	if exec.Command(docker, "stack", "config", "--help").Run() != nil {
		t.Skip("this docker command has no stack config")
	}
	env := map[string]string{"HOMEROOM_ADMIN_TOKEN": "t", "MINIO_ROOT_USER": "homeroom", "MINIO_ROOT_PASSWORD": "password1", "HOMEROOM_CONTROL_ADDR": "10.0.0.5"}
	run := func(env map[string]string) ([]byte, error) {
		cmd := exec.Command(docker, "stack", "config", "-c", stackPath)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.Bytes(), err
	}
	out, err := run(env)
	if err != nil {
		t.Fatalf("docker stack config: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "http://10.0.0.5:8080") {
		t.Errorf("the control node's address is not in the sign-in check's URL:\n%s", out)
	}
	requiresEach(t, "docker stack config", env, run)
}
