package embeddedstore

import (
	"context"
	"log/slog"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogToZap hands FerretDB's slog records to zap. FerretDB logs every
// connection and, at debug, every message, so its Info becomes our Debug and
// its Debug is dropped; warnings and errors keep their level.
type slogToZap struct {
	log    *zap.Logger
	prefix string // group names joined by dots, ending with a dot
}

func zapLevel(l slog.Level) (zapcore.Level, bool) {
	switch {
	case l < slog.LevelInfo:
		return 0, false
	case l < slog.LevelWarn:
		return zapcore.DebugLevel, true
	case l < slog.LevelError:
		return zapcore.WarnLevel, true
	default:
		// FerretDB's DPanic sits above Error; it must not panic us.
		return zapcore.ErrorLevel, true
	}
}

func (h *slogToZap) Enabled(_ context.Context, l slog.Level) bool {
	zl, ok := zapLevel(l)
	return ok && h.log.Core().Enabled(zl)
}

func (h *slogToZap) Handle(_ context.Context, r slog.Record) error {
	zl, ok := zapLevel(r.Level)
	if !ok {
		return nil
	}
	// FerretDB dumps every error reply it sends ("Response header: …",
	// "Response message: …") as a warning, the expected ones too (the
	// controller's probe for change streams, a write lost to a version
	// check). The client gets the error and reports what matters.
	if zl == zapcore.WarnLevel && strings.HasPrefix(r.Message, "Response ") {
		zl = zapcore.DebugLevel
	}
	ce := h.log.Check(zl, r.Message)
	if ce == nil {
		return nil
	}
	fields := make([]zap.Field, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool {
		fields = appendAttr(fields, h.prefix, a)
		return true
	})
	ce.Write(fields...)
	return nil
}

func (h *slogToZap) WithAttrs(attrs []slog.Attr) slog.Handler {
	fields := make([]zap.Field, 0, len(attrs))
	for _, a := range attrs {
		fields = appendAttr(fields, h.prefix, a)
	}
	return &slogToZap{log: h.log.With(fields...), prefix: h.prefix}
}

func (h *slogToZap) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &slogToZap{log: h.log, prefix: h.prefix + name + "."}
}

func appendAttr(fields []zap.Field, prefix string, a slog.Attr) []zap.Field {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, ga := range v.Group() {
			fields = appendAttr(fields, p, ga)
		}
		return fields
	}
	if a.Key == "" {
		return fields
	}
	return append(fields, zap.Any(prefix+a.Key, v.Any()))
}
