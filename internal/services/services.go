// Package services connects the binaries to the store and the artifact store,
// waiting (with backoff) for services that are still starting.
package services

import (
	"context"
	"path/filepath"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/store"
	"go.uber.org/zap"
)

// OpenStore connects to the configured store, retrying until wait elapses:
// at start the embedded store may still be coming up in the apiserver. A
// configuration that names no usable store fails at once.
func OpenStore(ctx context.Context, cfg config.Config, wait time.Duration, log *zap.Logger) (*store.Store, error) {
	uri, err := cfg.StoreURI()
	if err != nil {
		return nil, err
	}
	return backoff.Retry(ctx, func() (*store.Store, error) {
		return store.Open(ctx, uri, cfg.Database, log)
	}, backoff.WithMaxElapsedTime(wait), backoff.WithNotify(func(err error, d time.Duration) {
		log.Info("store not reachable yet; retrying", zap.Error(err), zap.Duration("in", d))
	}))
}

// OpenArtifacts connects to the configured artifact store, retrying like
// OpenStore (the embedded store's keys, too, may not be written yet).
func OpenArtifacts(ctx context.Context, cfg config.Config, wait time.Duration, log *zap.Logger) (*artifacts.Store, error) {
	return backoff.Retry(ctx, func() (*artifacts.Store, error) {
		acfg, err := ArtifactsConfig(cfg)
		if err != nil {
			return nil, err
		}
		return artifacts.New(ctx, acfg)
	}, backoff.WithMaxElapsedTime(wait), backoff.WithNotify(func(err error, d time.Duration) {
		log.Info("artifact store not reachable yet; retrying", zap.Error(err), zap.Duration("in", d))
	}))
}

// ArtifactsConfig is the client configuration for the configured artifact
// store, or for the embedded one the apiserver runs when none is configured,
// with the keys it generated into <data dir>/artifacts.credentials.
func ArtifactsConfig(cfg config.Config) (artifacts.Config, error) {
	endpoint, access, secret, secure := cfg.S3()
	if cfg.S3Endpoint == "" {
		var err error
		access, secret, err = artifacts.LoadEmbeddedCredentials(filepath.Join(cfg.DataDir, "artifacts"))
		if err != nil {
			return artifacts.Config{}, err
		}
	}
	return artifacts.Config{
		Endpoint: endpoint, AccessKey: access, SecretKey: secret, Bucket: cfg.S3Bucket, Secure: secure,
	}, nil
}
