package controller

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// StateSource is what the state collector reads at scrape time.
type StateSource interface {
	List(ctx context.Context) ([]api.Class, error)
}

// DockerState lists Homeroom's objects.
type DockerState interface {
	ListContainers(ctx context.Context, classID string) ([]container.Summary, error)
	ListNetworks(ctx context.Context, classID string) ([]network.Summary, error)
}

// StateCollector reports classes by desired and observed phase and the
// managed containers and networks, read when Prometheus scrapes (at most
// one store list and two Docker lists per scrape), so the numbers are never
// staler than the scrape.
type StateCollector struct {
	store      StateSource
	docker     DockerState
	classes    *prometheus.Desc
	containers *prometheus.Desc
	networks   *prometheus.Desc
}

// NewStateCollector builds the collector; register it with the registry.
func NewStateCollector(s StateSource, d DockerState) *StateCollector {
	return &StateCollector{
		store: s, docker: d,
		classes:    prometheus.NewDesc("homeroom_classes", "Classes by desired phase and observed phase.", []string{"desired", "phase"}, nil),
		containers: prometheus.NewDesc("homeroom_managed_containers", "Containers carrying Homeroom's labels.", nil, nil),
		networks:   prometheus.NewDesc("homeroom_managed_networks", "Networks carrying Homeroom's labels.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.classes
	ch <- c.containers
	ch <- c.networks
}

var phases = []api.Phase{api.PhasePending, api.PhaseProvisioning, api.PhaseUp, api.PhaseCollecting, api.PhaseDown, api.PhaseFailed}

// Collect implements prometheus.Collector. A source that does not answer in
// time leaves its series out of this scrape rather than stalling it.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if classes, err := c.store.List(ctx); err == nil {
		counts := map[[2]string]int{}
		for _, cl := range classes {
			desired := string(cl.DesiredPhase)
			if desired == "" {
				desired = string(api.PhaseDown)
			}
			counts[[2]string{desired, string(cl.Status.Phase)}]++
		}
		for _, d := range []api.Phase{api.PhaseUp, api.PhaseDown} {
			for _, p := range phases {
				ch <- prometheus.MustNewConstMetric(c.classes, prometheus.GaugeValue, float64(counts[[2]string{string(d), string(p)}]), string(d), string(p))
			}
		}
	}
	if cs, err := c.docker.ListContainers(ctx, ""); err == nil {
		ch <- prometheus.MustNewConstMetric(c.containers, prometheus.GaugeValue, float64(len(cs)))
	}
	if ns, err := c.docker.ListNetworks(ctx, ""); err == nil {
		ch <- prometheus.MustNewConstMetric(c.networks, prometheus.GaugeValue, float64(len(ns)))
	}
}
