package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// TestStoreURIEmbedded: without HOMEROOM_MONGO_URI both binaries connect to
// the socket in the data dir, by an absolute path (they may run in
// different directories), in a URI the driver reads back as that path.
func TestStoreURIEmbedded(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dataDir, sock := range map[string]string{
		"./data":             filepath.Join(wd, "data", "store.sock"),
		"/var/lib/homeroom/": "/var/lib/homeroom/store.sock",
		"/srv/a b+c@d":       "/srv/a b+c@d/store.sock",
	} {
		uri, err := Config{DataDir: dataDir}.StoreURI()
		if err != nil {
			t.Errorf("%s: %v", dataDir, err)
			continue
		}
		cs, err := connstring.Parse(uri)
		if err != nil {
			t.Errorf("%s: %s does not parse: %v", dataDir, uri, err)
			continue
		}
		if len(cs.Hosts) != 1 || cs.Hosts[0] != sock {
			t.Errorf("%s: %s reads back as %v, want %s", dataDir, uri, cs.Hosts, sock)
		}
	}
}

func TestStoreURIConfigured(t *testing.T) {
	const mongo = "mongodb://mongo:27017"
	t.Setenv("HOMEROOM_MONGO_URI", mongo)
	if uri, err := fromEnv(t).StoreURI(); uri != mongo || err != nil {
		t.Errorf("StoreURI = %q, %v; want %s", uri, err, mongo)
	}
}

func TestStoreURIRefusals(t *testing.T) {
	t.Run("HOMEROOM_EMBEDDED_MONGO_ADDR", func(t *testing.T) {
		t.Setenv("HOMEROOM_MONGO_URI", "")
		t.Setenv("HOMEROOM_DATA_DIR", "/var/lib/homeroom")
		t.Setenv("HOMEROOM_EMBEDDED_MONGO_ADDR", "127.0.0.1:27018")
		_, err := fromEnv(t).StoreURI()
		if err == nil {
			t.Fatal("no error")
		}
		for _, want := range []string{"HOMEROOM_EMBEDDED_MONGO_ADDR", "/var/lib/homeroom/store.sock", "HOMEROOM_MONGO_URI"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not say %s", err, want)
			}
		}
	})
	t.Run("a colon, which the driver takes for a port", func(t *testing.T) {
		if _, err := (Config{DataDir: "/srv/a:b"}).StoreURI(); err == nil || !strings.Contains(err.Error(), "HOMEROOM_DATA_DIR") {
			t.Errorf("StoreURI = %v, want an error naming HOMEROOM_DATA_DIR", err)
		}
	})
	t.Run("a socket path too long", func(t *testing.T) {
		fits := "/" + strings.Repeat("d", maxSocketPath-len("/store.sock")-1)
		if _, err := (Config{DataDir: fits}).StoreURI(); err != nil {
			t.Errorf("a socket path of exactly %d bytes: %v", maxSocketPath, err)
		}
		_, err := Config{DataDir: fits + "d"}.StoreURI()
		if err == nil || !strings.Contains(err.Error(), "HOMEROOM_DATA_DIR") {
			t.Errorf("a socket path of %d bytes: %v, want an error naming HOMEROOM_DATA_DIR", maxSocketPath+1, err)
		}
	})
}
