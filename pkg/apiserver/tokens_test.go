package apiserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// TestTokensAreStoredOnlyAsHashes reads every document of every collection
// the API wrote, raw: no token issued through the API, nor its secret part,
// is in any of them; the token's SHA-256 is. Listing tokens never shows one.
func TestTokensAreStoredOnlyAsHashes(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	third, _ := e.issue("ada")
	e.okAs(s.ada, 200, "GET", "/api/v1/whoami", "") // used, too

	dump := rawDump(t, e.uri, e.db)
	for _, tok := range []string{s.ada, s.bob, third} {
		if !strings.HasPrefix(tok, "hrt_") || len(tok) < 60 {
			t.Fatalf("token %q does not look like one", tok)
		}
		secret := tok[len("hrt_0123456789abcdef_"):] // the id is 16 hex digits; the secret may hold '_'
		if len(secret) != 43 {
			t.Fatalf("token %q: secret of %d characters", tok, len(secret))
		}
		sum := sha256.Sum256([]byte(tok))
		if bytes.Contains(dump, []byte(secret)) {
			t.Errorf("the secret of a token is stored in clear")
		}
		if !bytes.Contains(dump, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("the hash of a token is not stored")
		}
		for _, path := range []string{"/api/v1/users/ada/tokens", "/api/v1/users/bob/tokens", "/api/v1/audit?limit=1000"} {
			if r := e.ok2(200, "GET", path); bytes.Contains(r.body, []byte(secret)) {
				t.Errorf("%s shows a token's secret", path)
			}
		}
	}
}

func rawDump(t *testing.T, uri, database string) []byte {
	t.Helper()
	ctx := context.Background()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	db := client.Database(database)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 5 {
		t.Fatalf("only collections %v", names)
	}
	var dump []byte
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for cur.Next(ctx) {
			dump = append(dump, cur.Current...)
		}
		if err := cur.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return dump
}
