// Package manifests holds Homeroom's deployment manifests, not code:
// Dockerfile builds the one image of the apiserver and the controller, and
// compose.yaml deploys them on a Docker host with Traefik, MongoDB and MinIO.
// The package's tests check both files the way a reviewer would.
package manifests
