package embeddedstore_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/internal/embeddedstore"
)

// Wire protocol, as far as these tests speak it by hand: OP_MSG with one
// body section.
const (
	opMsg      = 2013
	moreToCome = 1 << 1
)

func opMsgBytes(t *testing.T, requestID int32, flags uint32, cmd bson.D) []byte {
	t.Helper()
	doc, err := bson.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 16, 16+4+1+len(doc))
	binary.LittleEndian.PutUint32(msg[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(msg[12:], opMsg)
	msg = binary.LittleEndian.AppendUint32(msg, flags)
	msg = append(msg, 0) // a body section
	msg = append(msg, doc...)
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	return msg
}

// readReply reads one OP_MSG reply and returns what it answers and its body.
func readReply(t *testing.T, r io.Reader) (responseTo int32, body bson.Raw) {
	t.Helper()
	var h [16]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	rest := make([]byte, binary.LittleEndian.Uint32(h[0:])-16)
	if _, err := io.ReadFull(r, rest); err != nil {
		t.Fatalf("read reply: %v", err)
	}
	if op := binary.LittleEndian.Uint32(h[12:]); op != opMsg || rest[4] != 0 {
		t.Fatalf("reply opcode %d, section kind %d: want an OP_MSG body", op, rest[4])
	}
	return int32(binary.LittleEndian.Uint32(h[8:])), bson.Raw(rest[5:])
}

// dialProxy opens a raw connection to the server's socket, as the driver
// would.
func dialProxy(t *testing.T, e *embeddedstore.Server) *net.UnixConn {
	t.Helper()
	path, err := url.QueryUnescape(strings.TrimPrefix(e.URI, "mongodb://"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UnixConn)
}

func connect(t *testing.T, uri string, opts ...*options.ClientOptions) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(append([]*options.ClientOptions{options.Client().ApplyURI(uri)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// TestStalledClientDoesNotStallWrites: a client that sends writes and never
// reads their replies must not hold up everyone else's writes. The proxy
// runs writes one at a time; if it kept that turn while it waited for the
// client to take a reply, one stuck client would stop the whole store.
func TestStalledClientDoesNotStallWrites(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir(), zap.NewNop())
	ctx := t.Context()
	coll := connect(t, e.URI).Database("t").Collection("c")
	// Each findAndModify with new: true returns this document: about 1 MB,
	// more than a socket's buffers hold.
	big := strings.Repeat("x", 1<<20)
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "big"}, {Key: "n", Value: 0}, {Key: "pad", Value: big}}); err != nil {
		t.Fatal(err)
	}

	stalled := dialProxy(t, e)
	if err := stalled.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	var reqs [][]byte
	for i := range 16 {
		reqs = append(reqs, opMsgBytes(t, int32(i+1), 0, bson.D{
			{Key: "findAndModify", Value: "c"},
			{Key: "query", Value: bson.D{{Key: "_id", Value: "big"}}},
			{Key: "update", Value: bson.D{{Key: "$inc", Value: bson.D{{Key: "n", Value: 1}}}}},
			{Key: "new", Value: true},
			{Key: "$db", Value: "t"},
		}))
	}
	go func() {
		// Only the first is read by the proxy before it blocks on its reply;
		// the others wait in the socket, as a pipelining client's would.
		// They end when the test closes the connection.
		for _, req := range reqs {
			if _, err := stalled.Write(req); err != nil {
				return
			}
		}
	}()
	// The proxy has started on the first reply, which cannot fit: it is
	// blocked writing it, after FerretDB answered, as long as nobody reads.
	var h [16]byte
	if err := stalled.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(stalled, h[:]); err != nil {
		t.Fatalf("the first reply to the stalled client did not begin: %v", err)
	}
	if n := binary.LittleEndian.Uint32(h[0:]); n < 1<<20 {
		t.Fatalf("reply of %d bytes: want one larger than the socket's buffers", n)
	}

	// Generous for a loaded machine; a write that waits for the stalled
	// client never finishes at all.
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := coll.InsertOne(wctx, bson.D{{Key: "_id", Value: "other"}}); err != nil {
		t.Fatalf("insert while a client is stalled: %v", err)
	}
	if _, err := coll.UpdateOne(wctx, bson.D{{Key: "_id", Value: "other"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "ok", Value: true}}}}); err != nil {
		t.Fatalf("update while a client is stalled: %v", err)
	}
	t.Logf("insert and update took %v while a client was stalled", time.Since(start).Round(time.Millisecond))
}

// TestUnacknowledgedWrite: an OP_MSG with moreToCome (a w:0 write) expects
// no reply. It is applied, nothing is sent back for it, and the connection
// goes on: the next command's reply is that command's.
func TestUnacknowledgedWrite(t *testing.T) {
	t.Parallel()
	e := start(t, t.TempDir(), zap.NewNop())

	t.Run("raw", func(t *testing.T) {
		c := dialProxy(t, e)
		if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		if _, err := c.Write(opMsgBytes(t, 1, moreToCome, bson.D{
			{Key: "insert", Value: "raw"},
			{Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: "w0"}}}},
			{Key: "writeConcern", Value: bson.D{{Key: "w", Value: 0}}},
			{Key: "$db", Value: "t"},
		})); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(opMsgBytes(t, 2, 0, bson.D{
			{Key: "find", Value: "raw"},
			{Key: "filter", Value: bson.D{{Key: "_id", Value: "w0"}}},
			{Key: "$db", Value: "t"},
		})); err != nil {
			t.Fatal(err)
		}
		to, body := readReply(t, r)
		if to != 2 {
			t.Fatalf("the first reply answers request %d, want 2 (the find): %v", to, body)
		}
		docs, err := body.LookupErr("cursor", "firstBatch")
		if err != nil {
			t.Fatalf("find reply %v: %v", body, err)
		}
		if vals, _ := docs.Array().Values(); len(vals) != 1 {
			t.Errorf("find after the unacknowledged insert: %v, want its document", docs)
		}
		// And nothing is left over for the next command.
		if _, err := c.Write(opMsgBytes(t, 3, 0, bson.D{{Key: "ping", Value: 1}, {Key: "$db", Value: "admin"}})); err != nil {
			t.Fatal(err)
		}
		if to, body := readReply(t, r); to != 3 {
			t.Errorf("the ping's reply answers request %d: %v", to, body)
		}
	})

	t.Run("driver", func(t *testing.T) {
		// One connection, so that the acknowledged commands follow the
		// unacknowledged one on it.
		client := connect(t, e.URI, options.Client().SetMaxPoolSize(1))
		db := client.Database("t")
		w0 := db.Collection("driver", options.Collection().SetWriteConcern(writeconcern.Unacknowledged()))
		for i := range 20 {
			if _, err := w0.InsertOne(t.Context(), bson.D{{Key: "_id", Value: i}}); err != nil {
				t.Fatalf("unacknowledged insert: %v", err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		n, err := db.Collection("driver").CountDocuments(ctx, bson.D{})
		if err != nil || n != 20 {
			t.Errorf("after 20 unacknowledged inserts: %d documents, %v", n, err)
		}
		if _, err := db.Collection("driver").InsertOne(ctx, bson.D{{Key: "_id", Value: "acked"}}); err != nil {
			t.Errorf("acknowledged insert on the same connection: %v", err)
		}
		if err := client.Ping(ctx, nil); err != nil {
			t.Errorf("ping: %v", err)
		}
	})
}
