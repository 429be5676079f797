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
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/homeroom/homeroom/internal/logging"
	"github.com/homeroom/homeroom/internal/services"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
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
	cfg := config.FromEnv()
	flag.StringVar(&cfg.ControllerListen, "listen", cfg.ControllerListen, "address for /metrics, /healthz and /readyz (HOMEROOM_CONTROLLER_LISTEN)")
	cfg.CommonFlags(flag.CommandLine)
	workers := flag.Int("workers", 4, "classes reconciled at once")
	parallel := flag.Int("parallel", envInt("HOMEROOM_PARALLEL", reconcile.DefaultParallel), "students of one class worked on at once (HOMEROOM_PARALLEL)")
	globalParallel := flag.Int("global-parallel", envInt("HOMEROOM_GLOBAL_PARALLEL", reconcile.DefaultGlobalParallel),
		"Docker steps in flight across all classes; more wait their turn (HOMEROOM_GLOBAL_PARALLEL)")
	profiling := flag.Bool("pprof", os.Getenv("HOMEROOM_PPROF") == "true", "serve net/http/pprof under /debug/pprof/ on the listen address (HOMEROOM_PPROF=true)")
	resync := flag.Duration("resync", 30*time.Second, "period of the full resync")
	poll := flag.Duration("poll", time.Second, "period of store polling")
	changeInterval := flag.Duration("change-interval", 100*time.Millisecond,
		"period of reading the store's count of class writes between polls: how soon a change is noticed, for a little CPU")
	leaseTTL := flag.Duration("lease-ttl", 15*time.Second, "how long the leader's lease lasts unrenewed: a stopped leader is replaced within it")
	hostname, _ := os.Hostname()
	id := flag.String("id", fmt.Sprintf("%s-%d", hostname, os.Getpid()), "this controller's name in the lease")
	orphanGrace := flag.Duration("orphan-grace", reconcile.DefaultOrphanGrace, "how long resources of a class gone from the store are left before they are collected and removed")
	flag.StringVar(&cfg.SubnetPool, "subnet-pool", cfg.SubnetPool, "address pool class networks take their subnets from (HOMEROOM_SUBNET_POOL)")
	flag.IntVar(&cfg.SubnetBits, "subnet-bits", cfg.SubnetBits, "prefix length of one class network's subnet (HOMEROOM_SUBNET_BITS)")
	flag.Parse()
	if *parallel <= 0 || *globalParallel <= 0 {
		return fmt.Errorf("-parallel %d, -global-parallel %d: want both above 0", *parallel, *globalParallel)
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

	pool, err := netip.ParsePrefix(cfg.SubnetPool)
	if err != nil || !pool.Addr().Is4() || cfg.SubnetBits < pool.Bits() || cfg.SubnetBits > 28 {
		return fmt.Errorf("subnet pool %q with /%d subnets: want an IPv4 prefix and a prefix length between its own and 28", cfg.SubnetPool, cfg.SubnetBits)
	}

	// Made by whichever of the apiserver and the controller starts first.
	secrets, err := st.SignInSecrets(ctx)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		docker.Metrics(), controller.NewStateCollector(st, docker))
	rec := reconcile.New(st, docker, art, pol, reconcile.Options{
		Domain: cfg.Domain, TraefikContainer: cfg.Traefik, ForwardAuth: cfg.ForwardAuthAddress(secrets.ForwardAuth), Parallel: *parallel, GlobalParallel: *globalParallel, Registerer: reg,
		SubnetPool: pool, SubnetBits: cfg.SubnetBits, OrphanGrace: *orphanGrace,
	}, log)
	elector := controller.NewElector(st, "homeroom-controller", *id, *leaseTTL, log, reg)
	ctl := controller.New(rec, st, docker, controller.Options{
		Elector: elector,
		Workers: *workers, PollInterval: *poll, ChangeInterval: *changeInterval, ResyncInterval: *resync, Router: cfg.Traefik,
	}, log, reg)

	mux := newMux(reg, map[string]func(context.Context) error{"store": st.Ping, "docker": docker.Ping, "artifacts": art.Ping}, *profiling)
	srv := &http.Server{Addr: cfg.ControllerListen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", zap.Error(err))
		}
	}()
	defer srv.Close()

	log.Info("controller running", zap.String("metrics", "http://"+cfg.ControllerListen+"/metrics"),
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

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
