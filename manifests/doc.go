// Package manifests holds Homeroom's deployment manifests, not code:
// Dockerfile builds the one image of the apiserver and the controller, and
// compose.yaml deploys them on a Docker host with Traefik, MongoDB and MinIO.
// prometheus/ holds the scrape config and the alert rules with their promtool
// tests, and grafana/ the dashboard. The package's tests check all of them
// the way a reviewer would.
package manifests
