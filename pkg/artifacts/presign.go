package artifacts

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// PresignPut is an address through which one PUT within ttl stores the
// object at key, and nothing else: whoever uploads through it (a job on a
// swarm node) holds no credentials of the store. It is signed for
// endpoint, the store as the uploader reaches it (host:port or a URL; ""
// is the store's own), since the host is part of the signature. Signing
// asks nothing of the server.
func (s *Store) PresignPut(ctx context.Context, key string, ttl time.Duration, endpoint string) (string, error) {
	c, err := s.presigner(endpoint)
	if err != nil {
		return "", err
	}
	u, err := c.PresignedPutObject(ctx, s.bucket, key, ttl)
	if err != nil {
		return "", fmt.Errorf("artifacts: presign %s: %w", key, err)
	}
	return u.String(), nil
}

// PresignGet is PresignPut's counterpart: one object, read within ttl.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, endpoint string) (string, error) {
	c, err := s.presigner(endpoint)
	if err != nil {
		return "", err
	}
	u, err := c.PresignedGetObject(ctx, s.bucket, key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("artifacts: presign %s: %w", key, err)
	}
	return u.String(), nil
}

// presigner is a client that signs for endpoint.
func (s *Store) presigner(endpoint string) (*minio.Client, error) {
	if endpoint == "" {
		endpoint = s.cfg.Endpoint
	}
	host, secure, err := parseEndpoint(endpoint, s.cfg.Secure)
	if err != nil {
		return nil, err
	}
	c, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(s.cfg.AccessKey, s.cfg.SecretKey, ""),
		Secure: secure, Region: s.cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: client for %s: %w", endpoint, err)
	}
	return c, nil
}

// Remove deletes the object at key; one already gone is success.
func (s *Store) Remove(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.objectErr("remove", key, err)
	}
	return nil
}
