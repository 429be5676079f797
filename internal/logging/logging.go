// Package logging builds the zap logger both binaries use: JSON by default,
// at a chosen level, so that operators can ship lines as they are.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON logger at level (debug, info, warn, error); format
// "console" gives human-readable lines for a terminal.
func New(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	switch format {
	case "", "json":
	case "console":
		cfg.Encoding = "console"
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	return cfg.Build()
}
