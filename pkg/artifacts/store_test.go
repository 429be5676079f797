package artifacts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/homeroom/homeroom/pkg/artifacts"
)

// onlyReader hides Seek and ReadAt, as a Docker stream would, so that
// minio-go cannot rewind or read the source in parallel.
type onlyReader struct{ io.Reader }

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readObject(t *testing.T, s *artifacts.Store, key string) []byte {
	t.Helper()
	rc, size, err := s.Open(testContext(t), key)
	if err != nil {
		t.Fatalf("Open(%s): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if int64(len(data)) != size {
		t.Fatalf("Open(%s) reported %d bytes, read %d", key, size, len(data))
	}
	return data
}

func TestPutStreamRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		cases := []struct {
			name      string
			data      []byte
			knownSize bool
		}{
			{"empty known size", nil, true},
			{"empty unknown size", nil, false},
			{"small known size", []byte("hello, homeroom\n"), true},
			{"small unknown size", []byte("a log line\n"), false},
			// Either side of the 1 MiB a stream of unknown size is read
			// ahead to tell whether it is small (one PUT) or not.
			{"unknown size just under the small limit", randomBytes(1<<20-1, 3), false},
			{"unknown size at the small limit", randomBytes(1<<20, 4), false},
			// Larger than the part size: multipart, parts streamed from a
			// reader that cannot seek.
			{"multipart known size", randomBytes(2*testPartSize+12345, 1), true},
			{"multipart unknown size", randomBytes(2*testPartSize+54321, 2), false},
		}
		var objs []artifacts.Object
		for _, tc := range cases {
			key := "put/" + strings.ReplaceAll(tc.name, " ", "-") + ".bin"
			size := int64(-1)
			if tc.knownSize {
				size = int64(len(tc.data))
			}
			obj, err := s.PutStream(ctx, key, onlyReader{bytes.NewReader(tc.data)}, size, "")
			if err != nil {
				t.Fatalf("%s: PutStream: %v", tc.name, err)
			}
			want := artifacts.Object{Key: key, Size: int64(len(tc.data)), SHA256: sha(tc.data)}
			if obj != want {
				t.Errorf("%s: PutStream = %+v, want %+v", tc.name, obj, want)
			}
			if got := readObject(t, s, key); !bytes.Equal(got, tc.data) {
				t.Errorf("%s: read back %d bytes (sha256 %s), want %d (%s)", tc.name, len(got), sha(got), len(tc.data), want.SHA256)
			}
			objs = append(objs, obj)
		}
		if err := s.Verify(ctx, objs); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
}

func TestPutStreamShortSource(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		for _, n := range []int{100, testPartSize + 100} {
			data := randomBytes(n, 3)
			_, err := s.PutStream(ctx, "short.bin", onlyReader{bytes.NewReader(data[:n/2])}, int64(n), "")
			if err == nil || !strings.Contains(err.Error(), "source ended") {
				t.Errorf("PutStream of %d announced bytes from a source of %d: %v", n, n/2, err)
			}
			// A failed upload leaves nothing behind, in particular nothing that
			// breaks listings (gofakes3 without its cleanup did).
			if keys, err := s.ListKeys(ctx, ""); err != nil || len(keys) != 0 {
				t.Errorf("after a failed upload of %d bytes the bucket holds %v (%v)", n, keys, err)
			}
		}
	})
}

func TestVerify(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		data := randomBytes(testPartSize+1000, 4)
		streamed, err := s.PutStream(ctx, "verify/streamed.bin", onlyReader{bytes.NewReader(data)}, -1, "")
		if err != nil {
			t.Fatal(err)
		}
		// PutJSON stores the checksum in the object's metadata, so Verify
		// checks it without reading the object back.
		doc, err := s.PutJSON(ctx, "verify/doc.json", map[string]string{"a": "b"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, []artifacts.Object{streamed, doc}); err != nil {
			t.Fatalf("Verify of what was stored: %v", err)
		}

		otherSum := sha([]byte("something else"))
		bad := map[string]artifacts.Object{
			"wrong size streamed":     {Key: streamed.Key, Size: streamed.Size + 1, SHA256: streamed.SHA256},
			"wrong checksum streamed": {Key: streamed.Key, Size: streamed.Size, SHA256: otherSum},
			"wrong size json":         {Key: doc.Key, Size: doc.Size - 1, SHA256: doc.SHA256},
			"wrong checksum json":     {Key: doc.Key, Size: doc.Size, SHA256: otherSum},
			"missing":                 {Key: "verify/missing.bin", Size: 1, SHA256: otherSum},
			"no checksum recorded":    {Key: streamed.Key, Size: streamed.Size},
		}
		for name, obj := range bad {
			err := s.Verify(ctx, []artifacts.Object{doc, obj, streamed})
			if err == nil {
				t.Errorf("%s: Verify succeeded", name)
				continue
			}
			if name == "missing" && !errors.Is(err, artifacts.ErrNotFound) {
				t.Errorf("missing: Verify error %v does not wrap ErrNotFound", err)
			}
			t.Logf("%s: %v", name, err)
		}
	})
}

func TestJSONAndNotFound(t *testing.T) {
	forEachBackendConfig(t, func(t *testing.T, cfg artifacts.Config) {
		s := newStore(t, cfg)
		ctx := testContext(t)
		type doc struct {
			Name  string `json:"name"`
			Count int    `json:"count"`
		}
		in := doc{Name: "alice", Count: 3}
		putObj, err := s.PutJSON(ctx, "json/doc.json", in)
		if err != nil {
			t.Fatal(err)
		}
		var out doc
		if err := s.GetJSON(ctx, "json/doc.json", &out); err != nil {
			t.Fatal(err)
		}
		if out != in {
			t.Errorf("GetJSON = %+v, want %+v", out, in)
		}
		if err := s.GetJSON(ctx, "json/missing.json", &out); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("GetJSON of a missing key: %v, want ErrNotFound", err)
		}
		if _, _, err := s.Open(ctx, "json/missing.bin"); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("Open of a missing key: %v, want ErrNotFound", err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping: %v", err)
		}
		// The checksum PutJSON knows up front is stored as x-amz-meta-sha256.
		raw, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")})
		if err != nil {
			t.Fatal(err)
		}
		info, err := raw.StatObject(ctx, cfg.Bucket, "json/doc.json", minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Metadata.Get("X-Amz-Meta-Sha256"); got != putObj.SHA256 {
			t.Errorf("x-amz-meta-sha256 = %q, want %q (metadata %v)", got, putObj.SHA256, info.Metadata)
		}
		// A second store on the same bucket: the bucket exists already.
		if err := s.EnsureBucket(ctx); err != nil {
			t.Errorf("EnsureBucket on an existing bucket: %v", err)
		}
	})
}

func TestPutStreamRejectsBadKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		for _, key := range []string{"", "/abs", "a/../b", "a//b", "dir/", "./a"} {
			if _, err := s.PutStream(testContext(t), key, strings.NewReader("x"), 1, ""); err == nil {
				t.Errorf("PutStream(%q): no error", key)
			}
		}
	})
}

func TestConcurrentNewCreatesBucketOnce(t *testing.T) {
	forEachBackendConfig(t, func(t *testing.T, cfg artifacts.Config) {
		// Several processes starting at once race to create the bucket; the
		// losers' "already exists" answers are success.
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				c := cfg
				c.PartSize = testPartSize
				_, errs[i] = artifacts.New(testContext(t), c)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
	})
}

// A PUT replaces the object's metadata, as in S3: a checksum stored by an
// earlier PutJSON must not outlive the content it described (gofakes3 merges
// metadata unless the embedded server corrects it).
func TestOverwriteReplacesMetadata(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		if _, err := s.PutJSON(ctx, "over/key", map[string]int{"v": 1}); err != nil {
			t.Fatal(err)
		}
		data := []byte("streamed content\n")
		obj, err := s.PutStream(ctx, "over/key", bytes.NewReader(data), int64(len(data)), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(ctx, []artifacts.Object{obj}); err != nil {
			t.Errorf("Verify after overwriting a JSON object with a stream: %v", err)
		}
		if got := readObject(t, s, "over/key"); !bytes.Equal(got, data) {
			t.Errorf("read back %q", got)
		}
	})
}
