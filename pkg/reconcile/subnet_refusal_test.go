package reconcile_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

func TestRefusedSubnetsAreSkippedNotLoopedOn(t *testing.T) {
	t.Run("the next free subnet is taken", func(t *testing.T) {
		e := newEnv(t)
		e.docker.refusedSubnets = map[string]bool{"10.200.0.0/23": true, "10.200.2.0/23": true}
		e.putClass(api.PhaseUp, "alice")
		e.mustConverge()
		n, ok := e.docker.network(netName)
		if !ok || n.opts.IPAM.Config[0].Subnet != "10.200.4.0/23" {
			t.Fatalf("network %+v (exists %v), want it on 10.200.4.0/23", n.opts.IPAM, ok)
		}
	})
	t.Run("a pool with nothing free is reported", func(t *testing.T) {
		e := newEnv(t)
		refused := map[string]bool{}
		for i := 0; i < 16; i++ {
			refused[netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 250, byte(2 * i), 0}), 23).String()] = true
		}
		e.docker.refusedSubnets = refused
		e.rec = reconcile.New(e.store, e.docker, e.art, policy.Default(), reconcile.Options{
			Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second,
			SubnetPool: netip.MustParsePrefix("10.250.0.0/19"), SubnetBits: 23,
		}, zaptest.NewLogger(t))
		e.putClass(api.PhaseUp, "alice")
		_, err := e.pass()
		if err == nil || !strings.Contains(err.Error(), "refused attempts") {
			t.Fatalf("pass error %v, want the refusals reported", err)
		}
		attempts := 0
		for _, c := range e.docker.writes() {
			if strings.HasPrefix(c, "EnsureNetwork") {
				attempts++
			}
		}
		if attempts != 8 {
			t.Errorf("%d create attempts in one pass, want 8 (bounded)", attempts)
		}
		if c := cond(e.class(), api.ConditionSynced); c.Status != "False" || !strings.Contains(c.Message, "subnet") {
			t.Errorf("Synced = %+v", c)
		}
	})
}
