//go:build tools

// Package tools pins Prometheus's promtool so that `go build` in this module
// builds it at the version go.mod names.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
