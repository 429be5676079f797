// Command apiserver serves Homeroom's HTTP API. With no external store or
// artifact store configured it runs both embedded, under the data dir, and
// serves them to the controller: the store on a Unix socket in the data dir,
// the artifact store on loopback.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/homeroom/homeroom/internal/embeddedstore"
	"github.com/homeroom/homeroom/internal/logging"
	"github.com/homeroom/homeroom/internal/services"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "apiserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfg, acfg, err := loadConfig(os.Args[1:], os.LookupEnv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	proxies, err := cfg.TrustedProxyNets()
	if err != nil {
		return err
	}
	// A store setting that cannot work stops the start before anything is
	// made in the data dir.
	if _, err := cfg.StoreURI(); err != nil {
		return err
	}

	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	log.Info("api limits", zap.Float64("ratePerToken", acfg.rate), zap.Int("burst", acfg.burst),
		zap.Float64("authFailureRate", acfg.authFailRate), zap.Int("authFailureBurst", acfg.authFailBurst),
		zap.Duration("maxWait", acfg.maxWait), zap.Bool("requireRegistration", acfg.requireRegistration),
		zap.Stringers("trustedProxies", proxies))
	defer log.Sync()
	pol, err := policy.Load(cfg.PolicyPath)
	if err != nil {
		return err
	}

	if cfg.MongoURI == "" || cfg.S3Endpoint == "" {
		// The data dir holds secrets (the artifact store's keys), and the
		// store's socket is made in it before it is narrowed to 0600: no
		// one else may enter it.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("data dir (HOMEROOM_DATA_DIR): %w", err)
		}
		if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
			log.Warn("data dir could not be made private", zap.String("dir", cfg.DataDir), zap.Error(err))
		}
	}
	if cfg.MongoURI == "" {
		sock, err := cfg.EmbeddedStoreSocket()
		if err != nil {
			return err
		}
		emb, err := embeddedstore.Start(ctx, filepath.Join(cfg.DataDir, "store"), sock, log)
		if err != nil {
			return fmt.Errorf("%w (under HOMEROOM_DATA_DIR %s)", err, cfg.DataDir)
		}
		defer emb.Stop()
		log.Info("embedded store serving", zap.String("socket", sock))
	}
	if cfg.S3Endpoint == "" {
		// versitygw, a child process on loopback, with keys generated into
		// <data dir>/artifacts.credentials.
		emb, err := versitygw.StartEmbeddedAt(ctx, acfg.versitygw, filepath.Join(cfg.DataDir, "artifacts"), cfg.EmbeddedS3, log.Named("s3"))
		if err != nil {
			return fmt.Errorf("embedded artifact store: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			emb.Stop(sctx)
		}()
		log.Info("embedded artifact store serving", zap.String("endpoint", emb.Endpoint),
			zap.String("credentials", artifacts.EmbeddedCredentialsFile(filepath.Join(cfg.DataDir, "artifacts"))))
	}

	st, err := services.OpenStore(ctx, cfg, time.Minute, log)
	if err != nil {
		return err
	}
	defer st.Close(context.Background())
	art, err := services.OpenArtifacts(ctx, cfg, time.Minute, log)
	if err != nil {
		return err
	}
	token, err := cfg.LoadOrCreateToken()
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Made here on first start, so that links can be issued before the
	// controller has ever run; a store that cannot make them is not usable.
	if _, err := st.SignInSecrets(ctx); err != nil {
		return err
	}
	api := apiserver.New(st, art, pol, token, log, reg, reg, append(acfg.options(), apiserver.WithDomain(cfg.Domain), apiserver.WithTrustedProxies(proxies))...)
	srv := &http.Server{
		Addr:              cfg.Listen,
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      10 * time.Minute, // artifact downloads stream
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("apiserver listening", zap.String("url", "http://"+cfg.Listen))
	fmt.Printf("Homeroom API: http://%s\n", cfg.Listen)
	fmt.Printf("Teacher pages: http://%s/ui/\n", cfg.Listen)
	// A token the operator supplied is theirs to know; printing it would
	// only copy a secret into the logs.
	if cfg.AdminToken == "" {
		fmt.Printf("Admin token:  %s (kept in %s)\n", token, filepath.Join(cfg.DataDir, "admin.token"))
	}

	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Long polls would hold Shutdown up to their wait: answer them now.
	api.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
