package disruption

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// TestDownSurvivesControllerKills kills the controller process (SIGKILL) at
// each risky point of a Down of five students, restarts it, and checks that
// the Down completes with every file stored exactly once.
func TestDownSurvivesControllerKills(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	// Only a build with failpoints can be killed at them.
	bin := filepath.Join(testenv.BuildBinariesWithTags(t, []string{"failpoints"}, "controller"), "controller")
	uri, db := testenv.StoreURI(t)
	st := testenv.OpenStore(t, uri, db)
	s3 := testenv.StartS3(t)
	cfg := s3.Config()
	art, err := artifacts.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOMEROOM_MONGO_URI=" + uri, "HOMEROOM_MONGO_DATABASE=" + db,
		"HOMEROOM_S3_ENDPOINT=" + cfg.Endpoint, "HOMEROOM_S3_ACCESS_KEY=" + cfg.AccessKey,
		"HOMEROOM_S3_SECRET_KEY=" + cfg.SecretKey, "HOMEROOM_S3_BUCKET=" + cfg.Bucket,
		"HOMEROOM_TRAEFIK_CONTAINER=hr-disruption-no-router",
	}
	controller := func(t *testing.T, fp string) *testenv.Process {
		e := append(env, "HOMEROOM_CONTROLLER_LISTEN="+testenv.FreeAddr(t), failpoint.Env+"="+fp)
		return testenv.StartProcess(t, bin, e, "-poll", "100ms")
	}
	students := []string{"ada", "ben", "cy", "dee", "eli"}
	points := []struct{ desc, failpoint string }{
		{"after collecting, before uploading", "archive-open-before-upload:3"},
		{"mid-upload", "file-uploaded:4"},
		{"after uploading, before checkpointing", "verified-before-checkpoint:2"},
		{"after removing some containers", "container-removed:2"},
		{"before removing the network", "before-network-remove"},
		{"before recording the run complete", "before-complete-run"},
	}
	for i, p := range points {
		t.Run(p.desc, func(t *testing.T) {
			id := fmt.Sprintf("crash-%d", i)
			testenv.CleanupClass(t, d, id)
			if _, _, err := st.PutSpec(ctx, id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students}); err != nil {
				t.Fatal(err)
			}
			testenv.SetPhase(t, st, id, api.PhaseUp)
			ctl := controller(t, "")
			testenv.WaitPhase(t, st, id, api.PhaseUp, 2*time.Minute)
			ctl.Stop()
			saved := saveWork(t, d, id, students, 3)

			testenv.SetPhase(t, st, id, api.PhaseDown)
			ctl = controller(t, p.failpoint)
			if state := ctl.Wait(2 * time.Minute); !testenv.KilledBy(state, syscall.SIGKILL) {
				t.Fatalf("controller was not killed at %s: %v\n%s", p.failpoint, state, ctl.Output())
			}
			ctl = controller(t, "")
			c := testenv.WaitPhase(t, st, id, api.PhaseDown, 2*time.Minute)
			ctl.Stop()
			checkCollected(t, d, art, c, saved)
		})
	}
}
