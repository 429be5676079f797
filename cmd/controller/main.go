// Command controller makes Docker match the classes in the store: it never
// takes orders except through the desired state the apiserver writes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/homeroom/homeroom/internal/logging"
	"github.com/homeroom/homeroom/internal/services"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/grading"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/swarm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, o, err := loadConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}

	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	defer log.Sync()
	pol, err := policy.Load(cfg.PolicyPath)
	if err != nil {
		return err
	}
	st, err := services.OpenStore(ctx, cfg, 2*time.Minute, log)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	art, err := services.OpenArtifacts(ctx, cfg, 2*time.Minute, log)
	if err != nil {
		return err
	}
	docker, err := dockerx.New(ctx)
	if err != nil {
		return err
	}
	defer docker.Close()
	if err := docker.Ping(ctx); err != nil {
		return fmt.Errorf("%w: is dockerd running?", err)
	}

	// rt runs the classes: the daemon itself, or the swarm it manages.
	// Graders run on that daemon either way.
	var rt runtime = docker
	var sw *swarm.Runtime
	if cfg.Runtime == "swarm" {
		sw = swarm.New(docker, art, swarm.Options{
			JobImage: cfg.SwarmJobImage, NodeSocket: cfg.SwarmNodeSocket, StoreEndpoint: cfg.SwarmStoreEndpoint, Router: cfg.Traefik,
			NodeLostAfter: cfg.SwarmNodeLostAfter, NetworkPool: cfg.SwarmNetworkPool,
		})
		if err := sw.CheckManager(ctx); err != nil {
			return err
		}
		rt = sw
	}

	pool, err := cfg.CheckSubnets() // checked by loadConfig already
	if err != nil {
		return err
	}

	// Made by whichever of the apiserver and the controller starts first.
	secrets, err := st.SignInSecrets(ctx)
	if err != nil {
		return err
	}

	var probeKey []byte
	if cfg.Runtime == "swarm" {
		// The sandboxes' overlay addresses are out of the controller's
		// reach: their readiness check goes through Traefik, with a probe
		// token the sign-in check lets through.
		probeKey = secrets.Key
		for _, t := range pol.Templates {
			if t.Readiness != nil && cfg.TraefikURL == "" {
				log.Warn("on a swarm a readiness check goes through Traefik, whose address the controller is not given: set HOMEROOM_TRAEFIK_URL, or the template's sandboxes never count as running", zap.String("template", t.Name))
			}
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		docker.Metrics(), controller.NewStateCollector(st, rt))
	if sw != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "homeroom_swarm_network_pool_free",
			Help: "Students' own networks made ahead of an Up, with Traefik on them, that no sandbox has taken yet.",
		}, func() float64 { return float64(sw.PoolFree()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "homeroom_swarm_network_pool_warm",
			Help: "Free networks of the pool that are set up on their node, where a placeholder task runs on them.",
		}, func() float64 { return float64(sw.PoolWarm()) }))
	}
	rec := reconcile.New(st, rt, art, pol, reconcile.Options{
		Domain: cfg.Domain, TraefikContainer: cfg.Traefik, RouterURL: strings.TrimSuffix(cfg.TraefikURL, "/"), ForwardAuth: cfg.ForwardAuthAddress(secrets.ForwardAuth), Parallel: o.parallel, GlobalParallel: o.globalParallel, Registerer: reg,
		SubnetPool: pool, SubnetBits: cfg.SubnetBits, OrphanGrace: o.orphanGrace, ProbeKey: probeKey,
	}, log)
	elector := controller.NewElector(st, "homeroom-controller", o.id, o.leaseTTL, log, reg)
	var ctl *controller.Controller
	grader := grading.New(st, docker, art, pol, rec, grading.Options{
		Graded: func(classID string) { ctl.Enqueue(classID) }, Registerer: reg, SweepEvery: o.resync,
	}, log.Named("grading"))
	ctl = controller.New(rec, st, rt, controller.Options{
		Elector: elector,
		Workers: o.workers, PollInterval: o.poll, ChangeInterval: o.changeInterval, ResyncInterval: o.resync, Router: cfg.Traefik,
		Grading: grader,
	}, log, reg)

	mux := newMux(reg, map[string]func(context.Context) error{"store": st.Ping, "docker": docker.Ping, "artifacts": art.Ping}, o.pprof)
	srv := &http.Server{Addr: cfg.ControllerListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", zap.Error(err))
		}
	}()
	defer srv.Close()

	log.Info("controller running", zap.String("metrics", "http://"+cfg.ControllerListen+"/metrics"), zap.String("runtime", cfg.Runtime),
		zap.String("traefik", cfg.Traefik), zap.String("domain", cfg.Domain))
	return ctl.Run(ctx)
}

// newMux serves metrics and health checks and, only when asked, the
// profiler: it shows goroutines and heap contents, so it is off by default.
func newMux(reg prometheus.Gatherer, ready map[string]func(context.Context) error, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		for name, ping := range ready {
			if err := ping(rctx); err != nil {
				http.Error(w, name+": "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// runtime is what runs the classes: reconcile's Docker, with the events and
// the orphans' classes the controller reads.
type runtime interface {
	reconcile.Docker
	controller.EventSource
	controller.ClassFinder
}
