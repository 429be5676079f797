package embeddedstore

import (
	"log/slog"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestFerretDBLogLevels: FerretDB's chatter stays out of an operator's way,
// while its real warnings and errors keep their level.
func TestFerretDBLogLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := slog.New(&slogToZap{log: zap.New(core)})
	log.Debug("every message")
	log.Info("connection accepted")
	log.Warn("Response header: length: 146, opcode: OP_MSG")
	log.Warn("Response message:\n{ ok: 0.0 }")
	log.Warn("disk almost full")
	log.Error("backend failed")

	want := map[string]zapcore.Level{
		"connection accepted":                          zapcore.DebugLevel,
		"Response header: length: 146, opcode: OP_MSG": zapcore.DebugLevel,
		"Response message:\n{ ok: 0.0 }":               zapcore.DebugLevel,
		"disk almost full":                             zapcore.WarnLevel,
		"backend failed":                               zapcore.ErrorLevel,
	}
	got := map[string]zapcore.Level{}
	for _, e := range logs.All() {
		got[e.Message] = e.Level
	}
	if len(got) != len(want) {
		t.Errorf("logged %v, want %v", got, want)
	}
	for msg, l := range want {
		if g, ok := got[msg]; !ok || g != l {
			t.Errorf("%q logged at %v (present %v), want %v", msg, g, ok, l)
		}
	}
}
