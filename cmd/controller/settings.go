package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// options are the controller's own settings, beyond those of pkg/config.
type options struct {
	workers, parallel, globalParallel int
	pprof                             bool
	resync, poll, changeInterval      time.Duration
	leaseTTL, orphanGrace             time.Duration
	id                                string
}

func (o *options) settings() []config.Setting {
	return []config.Setting{
		{Flag: "workers", Env: "HOMEROOM_WORKERS", Help: "classes reconciled at once", Value: config.Int(&o.workers, 4, 1)},
		{Flag: "parallel", Env: "HOMEROOM_PARALLEL", Help: "students of one class worked on at once", Value: config.Int(&o.parallel, reconcile.DefaultParallel, 1)},
		{Flag: "global-parallel", Env: "HOMEROOM_GLOBAL_PARALLEL", Help: "Docker steps in flight across all classes; more wait their turn", Value: config.Int(&o.globalParallel, reconcile.DefaultGlobalParallel, 1)},
		{Flag: "pprof", Env: "HOMEROOM_PPROF", Help: "serve net/http/pprof under /debug/pprof/ on the listen address", Value: config.Bool(&o.pprof, false)},
		{Flag: "resync", Env: "HOMEROOM_RESYNC", Help: "period of the full resync", Value: config.Duration(&o.resync, 30*time.Second, time.Millisecond, 0)},
		{Flag: "poll", Env: "HOMEROOM_POLL", Help: "period of reading every class's version from the store", Value: config.Duration(&o.poll, time.Second, time.Millisecond, 0)},
		{Flag: "change-interval", Env: "HOMEROOM_CHANGE_INTERVAL", Help: "period of reading the store's count of class writes between polls: how soon a change is noticed, for a little CPU", Value: config.Duration(&o.changeInterval, 100*time.Millisecond, time.Millisecond, 0)},
		{Flag: "lease-ttl", Env: "HOMEROOM_LEASE_TTL", Help: "how long the leader's lease lasts unrenewed: a stopped leader is replaced within it", Value: config.Duration(&o.leaseTTL, 15*time.Second, time.Millisecond, 0)},
		{Flag: "id", Env: "HOMEROOM_ID", Help: "this controller's name in the lease; empty: <hostname>-<pid>", Value: config.String(&o.id, "")},
		{Flag: "orphan-grace", Env: "HOMEROOM_ORPHAN_GRACE", Help: "how long resources of a class gone from the store are left before they are collected and removed", Value: config.Duration(&o.orphanGrace, reconcile.DefaultOrphanGrace, time.Millisecond, 0)},
	}
}

// settings are every setting the controller takes, bound to cfg and o.
func settings(cfg *config.Config, o *options) []config.Setting {
	return append(cfg.Settings(config.Controller), o.settings()...)
}

// loadConfig reads the controller's settings from the environment (lookup)
// and args, refusing any that does not parse or cannot work together.
func loadConfig(args []string, lookup func(string) (string, bool), usage io.Writer) (config.Config, options, error) {
	var cfg config.Config
	var o options
	if err := cfg.Load(config.Controller, o.settings(), args, lookup, usage); err != nil {
		return cfg, o, err
	}
	if _, err := cfg.CheckSubnets(); err != nil {
		return cfg, o, err
	}
	if o.id == "" {
		hostname, _ := os.Hostname()
		o.id = fmt.Sprintf("%s-%d", hostname, os.Getpid())
	}
	return cfg, o, nil
}
