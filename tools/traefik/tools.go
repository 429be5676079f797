//go:build tools

// Package tools pins Traefik's command so that `go build` in this module
// builds it at the version go.mod names.
package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
