package config

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// settingsTableHeader starts the table of every setting in README.md's
// Configuration section.
const settingsTableHeader = "| variable | flag | binary | default | meaning |"

// A DocumentedSetting is a row of README.md's table of settings.
type DocumentedSetting struct {
	Env, Flag, Binary, Default string
}

// ReadmeSettings reads the table of settings from the README at path: the
// table under "## Configuration" whose header is settingsTableHeader. Its
// tests keep the README and the code in step (CheckDocumented).
func ReadmeSettings(path string) ([]DocumentedSetting, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	readme := string(b)
	var rows []DocumentedSetting
	section, table, found := false, false, false
	sc := bufio.NewScanner(strings.NewReader(readme))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			section, table = line == "## Configuration", false
		case section && line == settingsTableHeader:
			if found {
				return nil, fmt.Errorf("two tables of settings in the Configuration section")
			}
			table, found = true, true
		case table && strings.HasPrefix(line, "| ---"):
		case table && strings.HasPrefix(line, "|"):
			cells := strings.Split(strings.Trim(line, "|"), " | ")
			if len(cells) != 5 {
				return nil, fmt.Errorf("a row of %d cells, want 5: %s", len(cells), line)
			}
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			rows = append(rows, DocumentedSetting{
				Env: strings.Trim(cells[0], "`"), Flag: strings.TrimPrefix(strings.Trim(cells[1], "`"), "-"),
				Binary: cells[2], Default: cells[3],
			})
		default:
			table = false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no table %q under \"## Configuration\"", settingsTableHeader)
	}
	return rows, nil
}

// CheckDocumented compares the rows of the README's table for binary name
// ("apiserver" or "controller"; a row for "both" is for each) with the
// settings it registers: the same flags, each with its variable and its
// default (a cell that starts with the default in backquotes, or with
// "empty" where the default is empty). It returns what differs.
func CheckDocumented(rows []DocumentedSetting, name string, settings []Setting) []string {
	var problems []string
	doc := map[string]DocumentedSetting{}
	for _, r := range rows {
		switch r.Binary {
		case name, "both":
		case "apiserver", "controller":
			continue
		default:
			problems = append(problems, fmt.Sprintf("%s: binary %q, want apiserver, controller or both", r.Env, r.Binary))
			continue
		}
		if _, dup := doc[r.Flag]; dup {
			problems = append(problems, fmt.Sprintf("-%s of the %s: two rows", r.Flag, name))
		}
		doc[r.Flag] = r
	}
	for _, s := range settings {
		r, ok := doc[s.Flag]
		if !ok {
			problems = append(problems, fmt.Sprintf("-%s (%s) of the %s: no row", s.Flag, s.Env, name))
			continue
		}
		delete(doc, s.Flag)
		if r.Env != s.Env {
			problems = append(problems, fmt.Sprintf("-%s of the %s: the row says %s, the code %s", s.Flag, name, r.Env, s.Env))
		}
		def := s.Value.String()
		if want := "`" + def + "`"; def == "" && !strings.HasPrefix(r.Default, "empty") || def != "" && !strings.HasPrefix(r.Default, want) {
			problems = append(problems, fmt.Sprintf("-%s of the %s: the row's default is %s, the code's %q", s.Flag, name, r.Default, def))
		}
	}
	for flag, r := range doc {
		problems = append(problems, fmt.Sprintf("-%s (%s): a row for the %s, which has no such flag", flag, r.Env, name))
	}
	return problems
}
