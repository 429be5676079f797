package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/client"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// classFile is what apply reads: one class per YAML document or JSON value,
// either flat (the spec's fields beside the id) or as get -o yaml|json
// prints it (the spec under spec, with the class's resourceVersion and the
// read-only fields, which apply ignores).
type classFile struct {
	ID         string        `yaml:"id" json:"id"`
	Subject    string        `yaml:"subject" json:"subject"`
	Template   string        `yaml:"template" json:"template"`
	Students   []string      `yaml:"students" json:"students"`
	TTLSeconds int64         `yaml:"ttlSeconds" json:"ttlSeconds"`
	Schedule   *api.Schedule `yaml:"schedule" json:"schedule"`
	Spec       *specFile     `yaml:"spec" json:"spec"`
	// ResourceVersion, as get printed it, makes apply write only over the
	// class at that version (If-Match), unless --force.
	ResourceVersion int64 `yaml:"resourceVersion" json:"resourceVersion"`
	classReadOnly   `yaml:",inline"`
}

func (a *app) applyCmd() *cobra.Command {
	var file string
	var force bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or replace classes from a YAML or JSON file",
		Long: `Create or replace classes from a YAML or JSON file ("-f -" reads stdin).
Each YAML document (or the JSON object, or each element of a JSON array) is one class:

  id: cs101-a
  subject: cs101
  template: sandbox
  students: [alice, bob, carol]
  ttlSeconds: 7200

What get CLASS -o yaml (or -o json) prints can be edited and applied as it is:
the spec is taken from spec, and the status and the other fields the server
keeps (desiredPhase, generation, createdAt, …) are ignored. A class in the file
with a resourceVersion, as get prints it, is written only if nobody changed
the class since (any write moves resourceVersion on, the controller's status
too); otherwise the server writes nothing and apply stops (exit 2) saying so.
Get it again and make your change to that, or use --force to overwrite
whatever the class is now. Without a resourceVersion the last write wins.

Applying a spec does not change the class's desired phase: use up and down.

` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return withCode(exitUsage, errors.New("apply needs -f FILE (or -f - for stdin)"))
			}
			raw, err := a.readFile(file)
			if err != nil {
				return err
			}
			classes, err := parseClasses(raw)
			if err != nil {
				return withCode(exitUsage, fmt.Errorf("%s: %w", displayName(file), err))
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var applied []*client.Class
			for _, cf := range classes {
				spec, _ := cf.classSpec() // checked by parseClasses
				var cl *client.Class
				var created bool
				if cf.ResourceVersion > 0 && !force {
					cl, err = c.PutClassIfVersion(cmd.Context(), cf.ID, spec, cf.ResourceVersion)
					if client.IsPreconditionFailed(err) {
						return staleClass(file, cf, err)
					}
				} else {
					cl, created, err = c.PutClass(cmd.Context(), cf.ID, spec)
				}
				if err != nil {
					return fmt.Errorf("class %s: %w", cf.ID, err)
				}
				applied = append(applied, cl)
				if !a.json() {
					verb := "configured"
					if created {
						verb = "created"
					}
					fmt.Fprintf(a.out, "class/%s %s (generation %d)\n", cl.ID, verb, cl.Generation)
				}
			}
			if a.json() {
				if len(applied) == 1 {
					return a.printJSON(applied[0])
				}
				return a.printJSON(map[string]any{"items": applied})
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the class file, YAML or JSON; - for stdin")
	cmd.MarkFlagFilename("filename", "yaml", "yml", "json")
	cmd.Flags().BoolVar(&force, "force", false, "ignore the file's resourceVersion: overwrite the class whatever it is now")
	return cmd
}

// readFile reads the file named by -f, stdin for "-"; failing is bad input.
func (a *app) readFile(file string) ([]byte, error) {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(a.in)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return raw, nil
}

func displayName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

// parseClasses reads JSON (an object or an array of objects) or YAML (one
// class per document), refusing unknown fields and classes without an id.
func parseClasses(raw []byte) ([]classFile, error) {
	var out []classFile
	trimmed := bytes.TrimSpace(raw)
	switch {
	case len(trimmed) == 0:
		return nil, errors.New("no class in the file")
	case trimmed[0] == '{' || trimmed[0] == '[':
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		dec.DisallowUnknownFields()
		if trimmed[0] == '[' {
			if err := dec.Decode(&out); err != nil {
				return nil, fmt.Errorf("JSON: %w", err)
			}
		} else {
			var cf classFile
			if err := dec.Decode(&cf); err != nil {
				return nil, fmt.Errorf("JSON: %w", err)
			}
			out = append(out, cf)
		}
		if dec.More() {
			return nil, errors.New("JSON: more than one value; use an array")
		}
	default:
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		for {
			var cf classFile
			err := dec.Decode(&cf)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("YAML: %w", err)
			}
			out = append(out, cf)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no class in the file")
	}
	for i, cf := range out {
		if cf.ID == "" {
			return nil, fmt.Errorf("class %d has no id", i+1)
		}
		if _, err := cf.classSpec(); err != nil {
			return nil, fmt.Errorf("class %s: %w", cf.ID, err)
		}
		if cf.ResourceVersion < 0 {
			return nil, fmt.Errorf("class %s: resourceVersion %d: a class's resourceVersion is positive", cf.ID, cf.ResourceVersion)
		}
	}
	return out, nil
}

func (a *app) phaseCmd(phase api.Phase) *cobra.Command {
	var wait bool
	var timeout time.Duration
	verb := strings.ToLower(string(phase))
	short := "Set a class's desired phase to Up: one sandbox per student"
	if phase == api.PhaseDown {
		short = "Set a class's desired phase to Down: collect every student's work, then remove"
	}
	cmd := &cobra.Command{
		Use:               verb + " CLASS",
		Short:             short,
		Long:              short + ".\n\nWith --wait, poll the class until the controller reports phase " + string(phase) + " for the\nlatest generation, showing progress on stderr.\n\n" + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var cl *client.Class
			if phase == api.PhaseUp {
				cl, err = c.Up(cmd.Context(), args[0])
			} else {
				cl, err = c.Down(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if !wait {
				if a.json() {
					return a.printJSON(cl)
				}
				fmt.Fprintf(a.out, "class/%s desired phase %s (generation %d)\n", cl.ID, cl.DesiredPhase, cl.Generation)
				return nil
			}
			cl, err = a.wait(cmd.Context(), c, cl, phase, timeout)
			if cl != nil && a.json() {
				if perr := a.printJSON(cl); err == nil {
					err = perr
				}
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the class is "+string(phase))
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long --wait waits (exit 4 past it)")
	return cmd
}

func (a *app) upCmd() *cobra.Command   { return a.phaseCmd(api.PhaseUp) }
func (a *app) downCmd() *cobra.Command { return a.phaseCmd(api.PhaseDown) }

func (a *app) getCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "get CLASS",
		Short: "Show one class: spec, phase, conditions and students",
		Long: `Show one class: spec, phase, conditions and students; the whole class as the
API gives it with -o json or -o yaml. That output can be edited and given back
to apply -f, which writes it only if the class is still at its resourceVersion.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		Annotations:       map[string]string{outputsAnnotation: "table,json,yaml"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cl, err := c.GetClass(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(cl)
			}
			if a.output == "yaml" {
				return a.printYAML(cl)
			}
			a.printClasses([]client.Class{*cl})
			tw := a.table()
			fmt.Fprintln(a.out)
			for _, cond := range cl.Status.Conditions {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", cond.Type+":", cond.Status, cond.Reason, cond.Message)
			}
			if len(cl.Status.Conditions) > 0 {
				tw.Flush()
				fmt.Fprintln(a.out)
			}
			fmt.Fprintln(tw, "STUDENT\tSTATE\tENDPOINT\tARTIFACTS")
			seen := map[string]bool{}
			for _, s := range cl.Status.Students {
				seen[s.ID] = true
				arts := "-"
				if s.Artifacts != nil {
					arts = fmt.Sprintf("%s: %d files, %s", s.Artifacts.RunID, s.Artifacts.Files, bytesHuman(s.Artifacts.Bytes))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.State, dash(s.Endpoint), arts)
			}
			for _, id := range cl.Spec.Students {
				if !seen[id] {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", id, "-", "-", "-")
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			// Why a sandbox is unready: its check and its last log lines.
			for _, s := range cl.Status.Students {
				if s.Message != "" {
					fmt.Fprintf(a.out, "\n%s (%s): %s\n", s.ID, s.State, strings.ReplaceAll(strings.TrimRight(s.Message, "\n"), "\n", "\n    "))
				}
			}
			return nil
		},
	}
}

func (a *app) listCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List classes with their phase",
		Long:    "List classes with their phase.\n\n" + exitCodeHelp,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			cls, err := c.ListClasses(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"items": nonNil(cls)})
			}
			if len(cls) == 0 {
				fmt.Fprintln(a.err, "no classes")
				return nil
			}
			return a.printClasses(cls)
		},
	}
}

func (a *app) printClasses(cls []client.Class) error {
	tw := a.table()
	fmt.Fprintln(tw, "CLASS\tSUBJECT\tTEMPLATE\tSTUDENTS\tDESIRED\tPHASE\tRUNNING\tGENERATION\tAGE")
	for _, cl := range cls {
		gen := fmt.Sprint(cl.Generation)
		if cl.Status.ObservedGeneration != cl.Generation {
			gen = fmt.Sprintf("%d (seen %d)", cl.Generation, cl.Status.ObservedGeneration)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\t%s\n", cl.ID, cl.Spec.Subject, cl.Spec.Template,
			len(cl.Spec.Students), cl.DesiredPhase, dash(string(cl.Status.Phase)), running(&cl), len(cl.Spec.Students),
			gen, age(cl.CreatedAt))
	}
	return tw.Flush()
}

func (a *app) deleteCmd() *cobra.Command {
	var abandon bool
	cmd := &cobra.Command{
		Use:   "delete CLASS",
		Short: "Forget a class that is Down; its artifacts stay",
		Long: `Forget a class that is Down; its artifacts stay. The server refuses (exit 2)
while the class is not Down: take it down first (down CLASS --wait). On a swarm
it also refuses while a lost node holds work of the class not yet collected,
which is collected once the node is back: --abandon-left-behind deletes the
class all the same and gives that work up.

` + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			del := c.Delete
			if abandon {
				del = c.DeleteAbandoningLeftBehind
			}
			if err := del(cmd.Context(), args[0]); err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"id": args[0], "deleted": true})
			}
			fmt.Fprintf(a.out, "class/%s deleted\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&abandon, "abandon-left-behind", false, "delete even while a lost node holds work of the class not yet collected, giving that work up")
	return cmd
}

func (a *app) artifactsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "List and fetch the work collected when classes went Down",
		Args:  cobra.NoArgs,
	}
	var run string
	ls := &cobra.Command{
		Use:               "ls CLASS",
		Short:             "List collected files of every run, or of one with --run",
		Long:              "List collected files of every run, or of one with --run.\n\n" + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			items, err := c.ListArtifacts(cmd.Context(), args[0], run)
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"items": nonNil(items)})
			}
			if len(items) == 0 {
				fmt.Fprintln(a.err, "no artifacts")
				return nil
			}
			tw := a.table()
			fmt.Fprintln(tw, "STUDENT\tRUN\tPATH\tSIZE\tSHA256")
			for _, it := range items {
				sum := it.SHA256
				if len(sum) > 12 {
					sum = sum[:12]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", it.Student, it.RunID, it.Path, it.Size, sum)
			}
			return tw.Flush()
		},
	}
	ls.Flags().StringVar(&run, "run", "", "only this run (see: homeroomctl runs CLASS)")

	var getRun, outFile, format string
	var all, force bool
	get := &cobra.Command{
		Use:   "get CLASS STUDENT PATH | get CLASS --all",
		Short: "Fetch one collected file, or with --all a whole run as one archive",
		Long: `Fetch one collected file of a student, of the latest run or of --run, to stdout
or to the file named by -O. PATH is as "artifacts ls" shows it, e.g.
files/workspace/hello.py or logs/container.log.

With --all, fetch a whole completed run as one archive: the latest completed run,
or --run. It holds the run's index.json and, for each student collected,
<student>/manifest.json, <student>/files/… and <student>/logs/container.log.
--format is zip (the default) or tar.gz. The archive goes to -O FILE (- for
stdout), by default <class>-<run>.zip (or .tar.gz) in the current directory. An
existing file is left alone unless --force. The download goes to a temporary
file beside it, renamed only once it arrived whole: a download that is
interrupted or cut off by the server leaves no file behind.

` + exitCodeHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				if len(args) != 1 {
					return withCode(exitUsage, fmt.Errorf("--all takes the class alone, not %d arguments", len(args)))
				}
				return nil
			}
			if format != "" || force {
				return withCode(exitUsage, errors.New("--format and --force go with --all"))
			}
			return cobra.ExactArgs(3)(cmd, args)
		},
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if all {
				return a.downloadRun(cmd.Context(), c, args[0], getRun, format, outFile, force)
			}
			body, err := c.GetArtifact(cmd.Context(), args[0], args[1], args[2], getRun)
			if err != nil {
				return err
			}
			defer body.Close()
			if outFile == "" || outFile == "-" {
				_, err = io.Copy(a.out, body)
				return err
			}
			return writeFileAtomic(outFile, body)
		},
	}
	get.Flags().StringVar(&getRun, "run", "", "the run to fetch from (default: the latest; with --all the latest completed)")
	get.Flags().StringVarP(&outFile, "output-file", "O", "", "write to this file instead of stdout (with --all: default <class>-<run>.zip, - for stdout)")
	get.Flags().BoolVar(&all, "all", false, "fetch every student's files of the run as one archive")
	get.Flags().StringVar(&format, "format", "", "with --all: zip (default) or tar.gz")
	get.Flags().BoolVar(&force, "force", false, "with --all: overwrite an existing file")
	get.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{client.ArchiveZip, client.ArchiveTarGz}, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(ls, get)
	return cmd
}

// writeFileAtomic writes r to path through a temporary file in the same
// directory, so that a failed download leaves no partial file behind.
func writeFileAtomic(path string, r io.Reader) error {
	return writeFileVia(path, true, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// writeFileVia has fill write a temporary file in path's directory and
// gives it path's name only if fill succeeded, so that a failed or
// interrupted download leaves no partial file behind. Unless replace, a
// file already at path is kept, and that is an error.
func writeFileVia(path string, replace bool, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return withCode(exitUsage, err)
	}
	tmp := f.Name()
	err = fill(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			os.Remove(tmp)
			return err
		}
		return nil
	}
	// A link is made only where no file is: nothing written meanwhile at
	// path is replaced.
	err = os.Link(tmp, path)
	switch {
	case errors.Is(err, fs.ErrExist):
		err = existsError(path)
	case err != nil:
		// A file system without hard links.
		if _, serr := os.Lstat(path); serr == nil {
			err = existsError(path)
		} else if err = os.Rename(tmp, path); err == nil {
			return nil
		}
	}
	os.Remove(tmp)
	return err
}

func existsError(path string) error {
	return withCode(exitUsage, fmt.Errorf("%s exists; --force overwrites it", path))
}

func (a *app) runsCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "runs CLASS",
		Short:             "List a class's Down runs, oldest first",
		Long:              "List a class's Down runs, oldest first.\n\n" + exitCodeHelp,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClasses,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			runs, err := c.ListRuns(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"items": nonNil(runs)})
			}
			tw := a.table()
			fmt.Fprintln(tw, "RUN\tKIND\tSTUDENTS\tCOMPLETE\tCOMPLETED")
			for _, r := range runs {
				done, kind := "-", r.Kind
				if r.CompletedAt != nil {
					done = r.CompletedAt.UTC().Format(time.RFC3339)
				}
				if kind == "" {
					kind = "-" // still collecting
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%t\t%s\n", r.RunID, kind, r.Students, r.Complete, done)
			}
			return tw.Flush()
		},
	}
}

func (a *app) templatesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "templates",
		Short: "List the templates classes may use (the server's allowlist)",
		Long:  "List the templates classes may use (the server's allowlist).\n\n" + exitCodeHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTemplates(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return a.printJSON(map[string]any{"items": nonNil(ts)})
			}
			tw := a.table()
			fmt.Fprintln(tw, "NAME\tIMAGE\tPORT\tCPUS\tMEMORY\tINTERNET\tPINNED\tDESCRIPTION")
			for _, t := range ts {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%g\t%dMiB\t%t\t%t\t%s\n", t.Name, t.Image, t.Port, t.CPUs, t.MemoryMiB, t.Internet, t.Pinned, t.Description)
			}
			return tw.Flush()
		},
	}
}

// completeClasses completes the first argument with the classes the server
// lists; it stays quiet when the server cannot be asked.
func (a *app) completeClasses(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	if a.server == "" {
		if err := a.resolve(cmd); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
	}
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cls, err := c.ListClasses(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var ids []string
	for _, cl := range cls {
		ids = append(ids, cl.ID+"\t"+string(cl.Status.Phase))
	}
	return ids, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) table() *tabwriter.Writer { return tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0) }

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func running(cl *client.Class) int {
	n := 0
	for _, s := range cl.Status.Students {
		if s.State == "running" {
			n++
		}
	}
	return n
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
