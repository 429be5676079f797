package artifacts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// EmbeddedCredentialsFile is where the apiserver's embedded artifact store
// (internal/versitygw) keeps the keys of the store it serves from dir:
// beside dir, as dir + ".credentials" (for the apiserver,
// <data dir>/artifacts.credentials).
func EmbeddedCredentialsFile(dir string) string {
	return filepath.Clean(dir) + ".credentials"
}

// EmbeddedCredentials is the content of EmbeddedCredentialsFile, as JSON.
type EmbeddedCredentials struct {
	AccessKey string `json:"accessKey"`
	SecretKey string `json:"secretKey"`
}

// LoadEmbeddedCredentials reads the keys of the embedded store serving dir,
// for a client of it (the controller). It fails while the store has never
// been started.
func LoadEmbeddedCredentials(dir string) (accessKey, secretKey string, err error) {
	path := EmbeddedCredentialsFile(dir)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("artifacts: embedded store credentials (written by the apiserver on its first start): %w", err)
	}
	c, err := ParseEmbeddedCredentials(b)
	if err != nil {
		return "", "", fmt.Errorf("artifacts: embedded store credentials %s: %w", path, err)
	}
	return c.AccessKey, c.SecretKey, nil
}

// ParseEmbeddedCredentials decodes the content of EmbeddedCredentialsFile.
func ParseEmbeddedCredentials(b []byte) (EmbeddedCredentials, error) {
	var c EmbeddedCredentials
	if err := json.Unmarshal(b, &c); err != nil || c.AccessKey == "" || c.SecretKey == "" {
		return c, fmt.Errorf("not a JSON object with accessKey and secretKey")
	}
	return c, nil
}
