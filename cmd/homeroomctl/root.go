package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// Exit codes scripts can rely on.
const (
	exitOK       = 0
	exitUsage    = 1 // bad flags, arguments or input files
	exitRefused  = 2 // the server refused the request (4xx)
	exitServer   = 3 // server error (5xx) or the server could not be reached
	exitTimeout  = 4 // --wait ran out of time
	exitFailed   = 5 // the class ended Failed while waiting
	defaultURL   = "http://127.0.0.1:8080"
	envServer    = "HOMEROOM_SERVER"
	envToken     = "HOMEROOM_TOKEN"
	exitCodeHelp = `Exit codes:
  0  ok
  1  usage or bad input (flags, arguments, the file given to apply)
  2  the server refused the request (4xx: bad token, unknown class, not Down, …)
  3  server or network error (5xx, server unreachable, call timed out)
  4  --wait timed out before the class reached the phase asked for
  5  the class ended Failed while waiting`
)

// exitError carries the exit code an error should end the command with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// exitCode classifies err: errors from the API by status, network errors
// as 3, everything else (cobra's usage errors included) as 1.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var xe *exitError
	if errors.As(err, &xe) {
		return xe.code
	}
	var ae *client.Error
	if errors.As(err, &ae) {
		if ae.IsClientError() {
			return exitRefused
		}
		return exitServer
	}
	var ue *url.Error
	var ne net.Error
	if errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrCutOff) {
		return exitServer
	}
	return exitUsage
}

type streams struct {
	in       io.Reader
	out, err io.Writer
}

// app is one invocation: its streams, environment and resolved settings.
type app struct {
	streams
	getenv func(string) string

	serverFlag, tokenFlag, configFlag, output string
	server, token                             string
	callTimeout                               time.Duration
	pollInterval                              time.Duration
	// isTTY reports whether progress can be redrawn in place; nil means
	// "is err a terminal".
	isTTY func() bool
}

// run executes one command line and returns its exit code.
func run(args []string, s streams, getenv func(string) string) int {
	return (&app{streams: s, getenv: getenv}).execute(args)
}

func (a *app) execute(args []string) int {
	cmd := a.rootCmd()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil {
		fmt.Fprintln(a.err, "error:", err)
	}
	return exitCode(err)
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "homeroomctl",
		Short: "Drive Homeroom classes from a terminal or a script",
		Long: `homeroomctl talks to Homeroom's apiserver: declare classes (apply), bring them
Up and Down (optionally waiting until the controller got there), look at them
(get, list), issue the students' sign-in links (links), fetch the work
collected on Down (artifacts), and read or redo its grading (grades,
regrade). Admins also register classes from roster files (rosters import)
and issue tokens (token).

The server and token come from --server/--token, else HOMEROOM_SERVER and
HOMEROOM_TOKEN, else the config file (--config, by default
$XDG_CONFIG_HOME/homeroom/config.yaml or ~/.config/homeroom/config.yaml):

  server: http://127.0.0.1:8080
  token: <bearer token>

` + exitCodeHelp,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return a.resolve(cmd) },
	}
	root.SetIn(a.in)
	root.SetOut(a.out)
	root.SetErr(a.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.serverFlag, "server", "", "apiserver URL (env "+envServer+"; default "+defaultURL+")")
	pf.StringVar(&a.tokenFlag, "token", "", "bearer token (env "+envToken+")")
	pf.StringVar(&a.configFlag, "config", "", "config file with server: and token: (default $XDG_CONFIG_HOME/homeroom/config.yaml)")
	pf.StringVarP(&a.output, "output", "o", "table", "output format: table or json (links, grades: csv too; get: yaml too)")
	pf.DurationVar(&a.callTimeout, "request-timeout", client.DefaultTimeout, "timeout of each API call")
	pf.DurationVar(&a.pollInterval, "poll-interval", time.Second, "how often --wait asks for the class")
	pf.MarkHidden("poll-interval")
	root.RegisterFlagCompletionFunc("output", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		return outputFormats(cmd), cobra.ShellCompDirectiveNoFileComp
	})

	root.AddCommand(a.applyCmd(), a.upCmd(), a.downCmd(), a.getCmd(), a.listCmd(), a.deleteCmd(),
		a.artifactsCmd(), a.runsCmd(), a.gradesCmd(), a.regradeCmd(), a.templatesCmd(), a.rostersCmd(), a.tokenCmd(), a.linksCmd(), a.scheduleCmd(), a.studentCmd())
	return root
}

// outputsAnnotation names, on a command that prints more than a table or
// JSON, the formats its -o takes ("table,csv,json").
const outputsAnnotation = "homeroomctl/outputs"

// outputFormats is what -o may be for cmd: table or json unless the
// command says otherwise.
func outputFormats(cmd *cobra.Command) []string {
	if f := cmd.Annotations[outputsAnnotation]; f != "" {
		return strings.Split(f, ",")
	}
	return []string{"table", "json"}
}

// orList writes formats as "a, b or c".
func orList(formats []string) string {
	if len(formats) < 2 {
		return strings.Join(formats, "")
	}
	return strings.Join(formats[:len(formats)-1], ", ") + " or " + formats[len(formats)-1]
}

type fileConfig struct {
	Server string `yaml:"server"`
	Token  string `yaml:"token"`
}

// resolve settles server and token: flags, then environment, then the
// config file, then the default URL.
func (a *app) resolve(cmd *cobra.Command) error {
	if formats := outputFormats(cmd); !slices.Contains(formats, a.output) {
		return withCode(exitUsage, fmt.Errorf("--output %q: want %s", a.output, orList(formats)))
	}
	var fc fileConfig
	path, explicit := a.configFlag, a.configFlag != ""
	if !explicit {
		path = a.defaultConfigPath()
	}
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			dec := yaml.NewDecoder(strings.NewReader(string(b)))
			dec.KnownFields(true)
			if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
				return withCode(exitUsage, fmt.Errorf("config %s: %w", path, err))
			}
		case explicit || !errors.Is(err, os.ErrNotExist):
			return withCode(exitUsage, fmt.Errorf("config: %w", err))
		}
	}
	a.server = first(a.serverFlag, a.getenv(envServer), fc.Server, defaultURL)
	a.token = first(a.tokenFlag, a.getenv(envToken), fc.Token)
	return nil
}

func (a *app) defaultConfigPath() string {
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "homeroom", "config.yaml")
	}
	if h := a.getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "homeroom", "config.yaml")
	}
	return ""
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func (a *app) client() (*client.Client, error) {
	c, err := client.New(a.server, a.token, client.WithTimeout(a.callTimeout))
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return c, nil
}

func (a *app) json() bool { return a.output == "json" }
