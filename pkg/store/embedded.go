package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Embedded is FerretDB v1.24.2 running in this process with its SQLite
// backend under a directory, so that Homeroom runs with no database server to
// install; the same driver code that talks to MongoDB talks to it over
// loopback TCP.
//
// FerretDB v1 executes update, findAndModify and delete as a SELECT followed
// by a write keyed by _id alone, in separate statements: the version in a
// filter is checked in Go, not by SQLite, so two conditional writes that run
// at once can both succeed and one is lost. The store's optimistic
// concurrency depends on that check being atomic. Embedded therefore does not
// expose FerretDB's own port: clients connect to a small proxy that runs
// commands that may write one at a time, which makes each such command atomic
// with respect to the others. Reads pass unserialized.
type Embedded struct {
	// URI is what clients connect to, e.g. mongodb://127.0.0.1:27018/.
	URI string

	cancel     context.CancelFunc
	ferretDone chan error // receives Run's result once FerretDB has stopped
	proxy      *proxy
	stopOnce   sync.Once
	stopErr    error
}

// startTimeout bounds startup when the caller's context has no deadline.
// FerretDB with SQLite is up in well under a second; a minute means
// something is wrong, such as a data directory on a hung filesystem.
const startTimeout = time.Minute

// newMu serializes ferretdb.New, which writes a package-level variable of
// FerretDB's (its version info) and so races when two instances start at
// once, as they do in parallel tests.
var newMu sync.Mutex

// StartEmbedded starts FerretDB with its data under dir (created if missing)
// and a client listener on listenAddr, such as "127.0.0.1:27018", or
// "127.0.0.1:0" for a free port, which is then in URI. It returns once a
// client can ping it through that listener. ctx bounds the startup only: the
// server runs until Stop, so that its users can be shut down before it.
func StartEmbedded(ctx context.Context, dir, listenAddr string, log *zap.Logger) (*Embedded, error) {
	if log == nil {
		log = zap.NewNop()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	// FerretDB unescapes the URL below and splices the path into SQLite's
	// own URI syntax unescaped: with these characters it opens the wrong
	// file or fails only on the first write.
	if strings.ContainsAny(dir, "%?#") {
		return nil, fmt.Errorf("embedded store: directory %q: FerretDB cannot use a path containing %%, ? or #", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{
			// Its own port is private to the proxy; see Embedded.
			TCP: "127.0.0.1:0",
		},
		Logger:  slog.New(&slogToZap{log: log.Named("ferretdb")}),
		Handler: "sqlite",
		// FerretDB wants a "file:" URL of a directory, slash-terminated.
		SQLiteURL: (&url.URL{Scheme: "file", Path: dir + "/"}).String(),
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	// New has already bound the port (Run only accepts), so this does not
	// block; MongoDBURI would block forever if it had not.
	backend, err := url.Parse(f.MongoDBURI())
	if err != nil {
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		// Run was never called, so FerretDB's listener and SQLite files
		// are still open; running it on a cancelled context closes them.
		cctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = f.Run(cctx)
		return nil, fmt.Errorf("embedded store: %w", err)
	}

	// Not derived from ctx: see the doc comment.
	runCtx, cancel := context.WithCancel(context.Background())
	e := &Embedded{
		URI:        (&url.URL{Scheme: "mongodb", Host: ln.Addr().String(), Path: "/"}).String(),
		cancel:     cancel,
		ferretDone: make(chan error, 1),
		proxy:      newProxy(ln, backend.Host, log.Named("ferretdb-proxy")),
	}
	go func() { e.ferretDone <- f.Run(runCtx) }()
	go e.proxy.serve()

	if err := e.waitReady(ctx); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("embedded store: %w", err)
	}
	log.Info("embedded store started", zap.String("uri", e.URI), zap.String("dir", dir))
	return e, nil
}

// waitReady pings through the proxy, which proves the whole path (proxy,
// FerretDB, SQLite directory) works rather than just that a port is open.
func (e *Embedded) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(e.URI).SetServerSelectionTimeout(startTimeout))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	if err := client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("wait for FerretDB: %w", err)
	}
	return nil
}

// Stop closes client connections, stops FerretDB and waits until its files
// are closed, so that another instance may open the same directory. It is
// safe to call more than once.
func (e *Embedded) Stop() error {
	e.stopOnce.Do(func() {
		// Proxy first: FerretDB gives open connections a grace period
		// before it stops, and closing them ourselves spares that wait.
		e.proxy.close()
		e.cancel()
		e.stopErr = <-e.ferretDone
	})
	return e.stopErr
}

// proxy forwards the wire protocol between clients and FerretDB, one backend
// connection per client connection, holding writeMu while a command that may
// write runs.
type proxy struct {
	ln      net.Listener
	backend string
	log     *zap.Logger

	writeMu sync.Mutex

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newProxy(ln net.Listener, backend string, log *zap.Logger) *proxy {
	p := &proxy{ln: ln, backend: backend, log: log, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	return p
}

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: let it pass rather
			// than spin.
			p.log.Warn("accept", zap.Error(err))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// track registers conns so that close can cut them; it refuses once closed so
// that no connection outlives Stop.
func (p *proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	_ = p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// handle relays one client connection. FerretDB answers every request with
// exactly one reply and handles a connection's requests in order, so a
// strict request/reply relay is faithful to it; the driver, for its part,
// never pipelines on a connection to a server that, like FerretDB, does not
// offer streaming monitoring.
func (p *proxy) handle(client net.Conn) {
	defer client.Close()
	backend, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		p.log.Warn("connect to FerretDB", zap.Error(err))
		return
	}
	defer backend.Close()
	if !p.track(client, backend) {
		return
	}
	defer p.untrack(client, backend)

	cr, br := bufio.NewReader(client), bufio.NewReader(backend)
	for {
		req, err := readMessage(cr)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.log.Debug("read request", zap.Error(err))
			}
			return
		}
		if isEndSessions(req) {
			// FerretDB v1 has no sessions and answers endSessions, which
			// the driver sends on every Disconnect, with an error that it
			// also logs as a warning with a full message dump. There is
			// nothing to end, so say so ourselves.
			if err := replyOK(req, client); err != nil {
				p.log.Debug("relay", zap.Error(err))
				return
			}
			continue
		}
		if err := p.roundTrip(req, backend, br, client); err != nil {
			p.log.Debug("relay", zap.Error(err))
			return
		}
	}
}

func (p *proxy) roundTrip(req []byte, backend net.Conn, br *bufio.Reader, client net.Conn) error {
	if mayWrite(req) {
		// Held until FerretDB has answered, that is until the command has
		// finished, even if the client has gone: releasing it earlier would
		// let another write interleave with one still running.
		p.writeMu.Lock()
		defer p.writeMu.Unlock()
	}
	if _, err := backend.Write(req); err != nil {
		return fmt.Errorf("to FerretDB: %w", err)
	}
	reply, err := readMessage(br)
	if err != nil {
		return fmt.Errorf("from FerretDB: %w", err)
	}
	if _, err := client.Write(reply); err != nil {
		return fmt.Errorf("to client: %w", err)
	}
	return nil
}

// isEndSessions reports whether req is an endSessions command that expects a
// reply.
func isEndSessions(req []byte) bool {
	name, ok := commandName(req)
	if !ok || !strings.EqualFold(name, "endSessions") || binary.LittleEndian.Uint32(req[12:16]) != opMsg {
		return false
	}
	const moreToCome = 2
	return binary.LittleEndian.Uint32(req[headerLen:])&moreToCome == 0
}

// replyOK answers the OP_MSG req with {ok: 1}.
func replyOK(req []byte, client net.Conn) error {
	doc, err := bson.Marshal(bson.D{{Key: "ok", Value: 1.0}})
	if err != nil {
		return err
	}
	msg := make([]byte, headerLen+4+1, headerLen+4+1+len(doc))
	binary.LittleEndian.PutUint32(msg[8:12], binary.LittleEndian.Uint32(req[4:8])) // responseTo: the request's id
	binary.LittleEndian.PutUint32(msg[12:16], opMsg)
	// flagBits and the section kind (0) stay zero.
	msg = append(msg, doc...)
	binary.LittleEndian.PutUint32(msg[0:4], uint32(len(msg)))
	_, err = client.Write(msg)
	return err
}

const (
	headerLen = 16
	// maxMessageLen is MongoDB's maxMessageSizeBytes, which FerretDB also
	// announces; anything longer is a broken stream, not a message.
	maxMessageLen = 48_000_000

	opQuery = 2004
	opMsg   = 2013
)

// readMessage reads one wire protocol message, header included.
func readMessage(r *bufio.Reader) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(h[:4])))
	if n < headerLen || n > maxMessageLen {
		return nil, fmt.Errorf("message length %d out of range", n)
	}
	msg := make([]byte, n)
	copy(msg, h[:])
	if _, err := io.ReadFull(r, msg[headerLen:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// readOnly lists the commands, lower-cased, that never write. The list is
// of reads rather than of writes so that a command missing from it is
// serialized: slower, but never wrong.
var readOnly = map[string]bool{
	"hello": true, "ismaster": true, "ping": true, "buildinfo": true,
	"find": true, "getmore": true, "killcursors": true, "count": true,
	"distinct": true, "listcollections": true, "listindexes": true,
	"listdatabases": true, "endsessions": true, "getparameter": true,
	"serverstatus": true, "dbstats": true, "collstats": true, "datasize": true,
	"explain": true, "connectionstatus": true, "whatsmyuri": true,
	"getlog": true, "hostinfo": true, "getcmdlineopts": true,
	"listcommands": true, "saslstart": true, "saslcontinue": true,
}

// mayWrite reports whether a request might write, by its command name: the
// first key of the command document.
func mayWrite(msg []byte) bool {
	name, ok := commandName(msg)
	return !ok || !readOnly[strings.ToLower(name)]
}

func commandName(msg []byte) (string, bool) {
	if len(msg) < headerLen {
		return "", false
	}
	body := msg[headerLen:]
	switch binary.LittleEndian.Uint32(msg[12:16]) {
	case opMsg:
		// flagBits, then sections; the command is the kind 0 section.
		if len(body) < 4 {
			return "", false
		}
		const checksumPresent = 1
		if binary.LittleEndian.Uint32(body)&checksumPresent != 0 {
			if len(body) < 8 {
				return "", false
			}
			body = body[:len(body)-4]
		}
		body = body[4:]
		for len(body) > 0 {
			kind := body[0]
			body = body[1:]
			switch kind {
			case 0:
				return firstKey(body)
			case 1:
				// A document sequence: its size includes itself.
				if len(body) < 4 {
					return "", false
				}
				n := int(int32(binary.LittleEndian.Uint32(body)))
				if n < 4 || n > len(body) {
					return "", false
				}
				body = body[n:]
			default:
				return "", false
			}
		}
	case opQuery:
		// The legacy handshake: flags, collection name, skip, limit, query.
		if len(body) < 4 {
			return "", false
		}
		body = body[4:]
		i := bytes.IndexByte(body, 0)
		if i < 0 || len(body) < i+1+8 {
			return "", false
		}
		return firstKey(body[i+1+8:])
	}
	return "", false
}

// firstKey returns the name of the first element of the BSON document at the
// start of b: a length, then type byte, then a NUL-terminated name.
func firstKey(b []byte) (string, bool) {
	if len(b) < 6 {
		return "", false
	}
	b = b[5:]
	i := bytes.IndexByte(b, 0)
	if i <= 0 {
		return "", false
	}
	return string(b[:i]), true
}

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
