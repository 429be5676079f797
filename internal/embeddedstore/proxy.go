package embeddedstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"
)

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

// Deadlines of the relay. A client that does not take its replies is cut
// off after clientWriteTimeout rather than holding a goroutine and a
// FerretDB connection forever. A FerretDB command that takes longer than
// backendTimeout is taken for hung (Homeroom's own clients give up on a
// round trip after 10 s): its connection is dropped, and the turn of writes
// it held passes on, since a FerretDB stuck that long would otherwise stop
// every write for good.
const (
	clientWriteTimeout = 30 * time.Second
	backendTimeout     = time.Minute
)

// handle relays one client connection. FerretDB answers every request with
// exactly one reply, even one flagged moreToCome, and handles a connection's
// requests in order, so a strict request/reply relay is faithful to it; the
// driver, for its part, never pipelines on a connection to a server that,
// like FerretDB, does not offer streaming monitoring.
func (p *proxy) handle(client net.Conn) {
	defer client.Close()
	backend, err := net.DialTimeout("unix", p.backend, 5*time.Second)
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
			if err := p.replyOK(req, client); err != nil {
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

// roundTrip relays one request and, unless the client expects none, its
// reply.
func (p *proxy) roundTrip(req []byte, backend net.Conn, br *bufio.Reader, client net.Conn) error {
	if hasMoreToCome(req) {
		return p.forward(req, backend, br)
	}
	reply, err := p.exchange(req, backend, br)
	if err != nil {
		return err
	}
	// Not under writeMu: a client that is slow to take its reply, or never
	// takes it, holds up no one else's writes.
	return p.writeClient(client, reply)
}

// exchange sends req to FerretDB and returns its reply. A command that may
// write holds writeMu until FerretDB has answered, that is until the
// command has finished, even if the client has gone: releasing it earlier
// would let another write interleave with one still running.
func (p *proxy) exchange(req []byte, backend net.Conn, br *bufio.Reader) ([]byte, error) {
	if mayWrite(req) {
		p.writeMu.Lock()
		defer p.writeMu.Unlock()
	}
	if err := backend.SetDeadline(time.Now().Add(backendTimeout)); err != nil {
		return nil, err
	}
	if _, err := backend.Write(req); err != nil {
		return nil, p.backendErr("to FerretDB", err)
	}
	reply, err := readMessage(br)
	if err != nil {
		return nil, p.backendErr("from FerretDB", err)
	}
	return reply, nil
}

// forward sends FerretDB a request flagged moreToCome, such as a write with
// w:0, whose client expects no reply. FerretDB v1 answers it all the same,
// and a later version may not: either way a ping of the proxy's own follows
// it on the same connection, and everything up to the ping's reply is
// dropped. As FerretDB runs a connection's requests in order, that reply
// also says the request has finished, so that a write holds writeMu for as
// long as it runs, as in exchange.
func (p *proxy) forward(req []byte, backend net.Conn, br *bufio.Reader) error {
	if mayWrite(req) {
		p.writeMu.Lock()
		defer p.writeMu.Unlock()
	}
	// Any id but the request's: its reply, if any, answers that one.
	id := ^binary.LittleEndian.Uint32(req[4:8])
	ping, err := opMsgCommand(id, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})
	if err != nil {
		return err
	}
	if err := backend.SetDeadline(time.Now().Add(backendTimeout)); err != nil {
		return err
	}
	for _, msg := range [][]byte{req, ping} {
		if _, err := backend.Write(msg); err != nil {
			return p.backendErr("to FerretDB", err)
		}
	}
	for {
		reply, err := readMessage(br)
		if err != nil {
			return p.backendErr("from FerretDB", err)
		}
		if binary.LittleEndian.Uint32(reply[8:12]) == id {
			return nil
		}
	}
}

// backendErr reports a failed exchange with FerretDB; one that timed out is
// worth an operator's attention, the others follow from a closing
// connection.
func (p *proxy) backendErr(what string, err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.log.Warn("FerretDB did not answer in time; dropping the connection", zap.Duration("timeout", backendTimeout))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// writeClient writes msg to the client, giving up after clientWriteTimeout.
func (p *proxy) writeClient(client net.Conn, msg []byte) error {
	if err := client.SetWriteDeadline(time.Now().Add(clientWriteTimeout)); err != nil {
		return err
	}
	if _, err := client.Write(msg); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			p.log.Warn("a client did not take its reply in time; dropping its connection", zap.Duration("timeout", clientWriteTimeout))
		}
		return fmt.Errorf("to client: %w", err)
	}
	return nil
}

// hasMoreToCome reports whether req is an OP_MSG whose sender expects no
// reply (flag bit 1, moreToCome).
func hasMoreToCome(req []byte) bool {
	const moreToCome = 1 << 1
	return len(req) >= headerLen+4 && binary.LittleEndian.Uint32(req[12:16]) == opMsg &&
		binary.LittleEndian.Uint32(req[headerLen:])&moreToCome != 0
}

// isEndSessions reports whether req is an endSessions command that expects a
// reply.
func isEndSessions(req []byte) bool {
	name, ok := commandName(req)
	return ok && strings.EqualFold(name, "endSessions") &&
		binary.LittleEndian.Uint32(req[12:16]) == opMsg && !hasMoreToCome(req)
}

// replyOK answers the OP_MSG req with {ok: 1}.
func (p *proxy) replyOK(req []byte, client net.Conn) error {
	msg, err := opMsgCommand(0, binary.LittleEndian.Uint32(req[4:8]), bson.D{{Key: "ok", Value: 1.0}})
	if err != nil {
		return err
	}
	return p.writeClient(client, msg)
}

// opMsgCommand is an OP_MSG whose one section is doc, with no flags.
func opMsgCommand(requestID, responseTo uint32, doc bson.D) ([]byte, error) {
	b, err := bson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, headerLen+4+1, headerLen+4+1+len(b))
	binary.LittleEndian.PutUint32(msg[4:8], requestID)
	binary.LittleEndian.PutUint32(msg[8:12], responseTo)
	binary.LittleEndian.PutUint32(msg[12:16], opMsg)
	// flagBits and the section kind (0) stay zero.
	msg = append(msg, b...)
	binary.LittleEndian.PutUint32(msg[0:4], uint32(len(msg)))
	return msg, nil
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
