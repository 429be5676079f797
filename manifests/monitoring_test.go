package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/homeroom/homeroom/internal/testenv"
)

// Paths are relative to this directory, where `go test` runs the tests.
const (
	prometheusDir     = "prometheus"
	prometheusConfig  = "prometheus/prometheus.yml"
	alertsPath        = "prometheus/alerts.yml"
	alertsTestPath    = "prometheus/alerts_test.yml"
	dashboardPath     = "grafana/homeroom.json"
	promtoolGoModPath = "../tools/promtool/go.mod"
	prometheusModule  = "github.com/prometheus/prometheus"
)

// The scrape jobs, by the Compose service each one scrapes and the variable
// that sets that service's listen address.
var scrapeJobs = []struct{ job, service, listenVar string }{
	{"homeroom-apiserver", "apiserver", "HOMEROOM_LISTEN"},
	{"homeroom-controller", "controller", "HOMEROOM_CONTROLLER_LISTEN"},
}

// homeroomMetrics is what Homeroom's binaries export: the names are a
// contract with pkg/ and cmd/, and every query in alerts.yml and the
// dashboard must use one of them (or up, go_*, process_*).
type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

var homeroomMetrics = map[string]metricKind{
	// controller
	"homeroom_reconcile_passes_total":     counter,
	"homeroom_reconcile_duration_seconds": histogram,
	"homeroom_workqueue_depth":            gauge,
	"homeroom_workqueue_retries_total":    counter,
	"homeroom_classes":                    gauge,
	"homeroom_managed_containers":         gauge,
	"homeroom_managed_networks":           gauge,
	"homeroom_up_duration_seconds":        histogram,
	"homeroom_collect_total":              counter,
	"homeroom_collect_bytes_total":        counter,
	"homeroom_collect_duration_seconds":   histogram,
	"homeroom_step_duration_seconds":      histogram,
	"homeroom_ttl_expiries_total":         counter,
	"homeroom_orphans_reaped_total":       counter,
	"homeroom_drift_repairs_total":        counter,
	"homeroom_sandbox_restarts_total":     counter,
	"homeroom_autosaves_total":            counter,
	"homeroom_workspace_bytes":            gauge,
	"homeroom_leaked_networks":            gauge,
	"homeroom_schedule_changes_total":     counter,
	"homeroom_schedule_lateness_seconds":  histogram,
	"homeroom_classes_late_for_bell":      gauge,
	"homeroom_leader":                     gauge,
	"homeroom_docker_calls_total":         counter,
	// both binaries
	"homeroom_quota_rejections_total": counter,
	// apiserver
	"homeroom_http_requests_total":          counter,
	"homeroom_signins_total":                counter,
	"homeroom_signin_refusals_total":        counter,
	"homeroom_forwardauth_duration_seconds": histogram,
	"homeroom_run_archives_total":           counter,
}

// The alerts operators rely on (issue 7, README "Monitoring").
var requiredAlerts = []string{
	"HomeroomAPIServerDown",
	"HomeroomControllerDown",
	"HomeroomNoLeader",
	"HomeroomTwoLeaders",
	"HomeroomClassNotReady",
	"HomeroomCollectFailures",
	"HomeroomSandboxesCrashLooping",
	"HomeroomReconcileErrorsRising",
	"HomeroomNetworksLeaked",
	"HomeroomSignInRefusalsBurst",
}

var severities = []string{"critical", "warning"}

// knownMetric reports whether name is a series the binaries or Prometheus
// produce: one of homeroomMetrics (with _bucket, _sum and _count for the
// histograms), up, or the Go and process collectors' go_* and process_*.
func knownMetric(name string) bool {
	if name == "up" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return true
	}
	if _, ok := homeroomMetrics[name]; ok {
		return true
	}
	return baseMetric(name) != name
}

// baseMetric strips a histogram's series suffix.
func baseMetric(name string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if k, ok := homeroomMetrics[base]; ok && k == histogram {
				return base
			}
		}
	}
	return name
}

// promqlKeywords are the identifiers of PromQL that are not metric names
// when no parenthesis follows them: operators, and aggregations followed by
// their by or without clause (sum by (le) (...)).
var promqlKeywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "atan2": true, "start": true, "end": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true,
	"stddev": true, "stdvar": true, "count": true, "count_values": true,
	"bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// labelListClauses take a parenthesised list of label names.
var labelListClauses = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true,
}

// metricNames returns the metric names a PromQL expression selects. It is a
// small tokenizer rather than Prometheus's parser (which would pull the whole
// of Prometheus into this module): strings, label matchers and ranges are
// skipped, an identifier followed by "(" is a function or an aggregation, and
// the label lists of by, without, on, ignoring and group_* are not metrics.
// promtool parses the same expressions for real (TestPromtool).
func metricNames(expr string) ([]string, error) {
	var names []string
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			switch {
			case expr[j] == '\\' && q != '`':
				j++
			case expr[j] == q:
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d in %q", i, expr)
	}
	// skipTo skips from the opening bracket at i past its closing one, over strings.
	skipTo := func(i int, closing byte) (int, error) {
		for j := i + 1; j < len(expr); {
			switch c := expr[j]; {
			case c == '"' || c == '\'' || c == '`':
				k, err := skipString(j)
				if err != nil {
					return 0, err
				}
				j = k
			case c == closing:
				return j + 1, nil
			default:
				j++
			}
		}
		return 0, fmt.Errorf("no %q after %d in %q", closing, i, expr)
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && strings.ContainsRune(" \t\r\n", rune(expr[i])) {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '#': // a comment, to the end of the line
			for i < len(expr) && expr[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			j, err := skipTo(i, '}')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '[':
			j, err := skipTo(i, ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(expr) && expr[i+1] >= '0' && expr[i+1] <= '9':
			// A number or a duration (0.9, 1e3, 0x1f, 5m): digits and what follows them.
			for i < len(expr) && (isIdent(expr[i]) || expr[i] == '.' ||
				(expr[i] == '+' || expr[i] == '-') && (expr[i-1] == 'e' || expr[i-1] == 'E')) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(expr) && isIdent(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := nextNonSpace(j)
			switch {
			case labelListClauses[strings.ToLower(word)] && k < len(expr) && expr[k] == '(':
				end, err := skipTo(k, ')')
				if err != nil {
					return nil, err
				}
				j = end
			case k < len(expr) && expr[k] == '(':
				// a function or an aggregation
			case promqlKeywords[strings.ToLower(word)]:
			case labelListClauses[strings.ToLower(word)]:
				// group_left with no list
			default:
				names = append(names, word)
			}
			i = j
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNamesTokenizer(t *testing.T) {
	for expr, want := range map[string][]string{
		`up{job="homeroom-apiserver"} == 0`: {"up"},
		`histogram_quantile(0.9, sum by (le, result) (rate(homeroom_reconcile_duration_seconds_bucket[5m])))`: {"homeroom_reconcile_duration_seconds_bucket"},
		`max(homeroom_leader) == 0 or absent(homeroom_leader)`:                                                {"homeroom_leader", "homeroom_leader"},
		`sum(rate(a_total{x="b{c}"}[1m] offset 5m)) without (d) / on (e) group_left (f) g * 1e3`:              {"a_total", "g"},
		`count(up == 0) or vector(0)`:                                         {"up"},
		`label_replace(go_goroutines, "dst", "$1", "src", "(.*)") > bool 2.5`: {"go_goroutines"},
	} {
		got, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// --- The files ------------------------------------------------------------

type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		Scheme        string `yaml:"scheme"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type ruleTestFile struct {
	RuleFiles          []string `yaml:"rule_files"`
	EvaluationInterval string   `yaml:"evaluation_interval"`
	Tests              []struct {
		Name        string `yaml:"name"`
		Interval    string `yaml:"interval"`
		InputSeries []struct {
			Series string `yaml:"series"`
			Values string `yaml:"values"`
		} `yaml:"input_series"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `yaml:"exp_labels"`
				ExpAnnotations map[string]string `yaml:"exp_annotations"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// dashboard is the part of Grafana's dashboard JSON model this test reads.
type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Datasource *datasourceRef            `json:"datasource"`
	GridPos    *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func loadPromConfig(t *testing.T) promConfig {
	t.Helper()
	var c promConfig
	// Not KnownFields: the configuration may grow fields this test ignores.
	b, err := os.ReadFile(prometheusConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", prometheusConfig, err)
	}
	return c
}

func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	var f ruleFile
	loadYAML(t, alertsPath, &f)
	if len(f.Groups) == 0 {
		t.Fatalf("%s: no groups", alertsPath)
	}
	return f
}

func loadAlertTests(t *testing.T) ruleTestFile {
	t.Helper()
	var f ruleTestFile
	loadYAML(t, alertsTestPath, &f)
	if len(f.Tests) == 0 {
		t.Fatalf("%s: no tests", alertsTestPath)
	}
	return f
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	return d
}

// allPanels flattens rows, collapsed or not.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// dashboardExprs maps "panel title (refId)" to each query of the dashboard.
func dashboardExprs(d dashboard) map[string]string {
	out := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("panel %d %q (%s)", p.ID, p.Title, tg.RefID)] = tg.Expr
		}
	}
	return out
}

// grafanaVariables are what Grafana substitutes in a query before it sends
// it; the values stand for them when promtool parses the query.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m",
	"${__rate_interval}", "5m",
	"$__interval", "1m",
	"${__interval}", "1m",
	"$__range", "1h",
	"${__range}", "1h",
)

// --- Tests of the files' contents -----------------------------------------

func TestPrometheusScrapesBothBinariesWhereComposeRunsThem(t *testing.T) {
	c := loadPromConfig(t)
	compose := loadCompose(t)
	if !slices.Contains(c.RuleFiles, filepath.Base(alertsPath)) {
		t.Errorf("%s: rule_files %q, want %s", prometheusConfig, c.RuleFiles, filepath.Base(alertsPath))
	}
	for _, want := range scrapeJobs {
		s := svc(t, compose, want.service)
		listen, err := interpolate(s.Environment[want.listenVar], testEnv)
		if err != nil {
			t.Fatalf("%s: %s: %v", want.service, want.listenVar, err)
		}
		_, port, err := net.SplitHostPort(listen)
		if err != nil {
			t.Fatalf("%s: %s=%q: %v", want.service, want.listenVar, listen, err)
		}
		target := net.JoinHostPort(want.service, port)
		found := false
		for _, sc := range c.ScrapeConfigs {
			if sc.JobName != want.job {
				continue
			}
			found = true
			if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
				t.Errorf("%s: metrics_path %q, want /metrics", sc.JobName, sc.MetricsPath)
			}
			if sc.Scheme != "" && sc.Scheme != "http" {
				t.Errorf("%s: scheme %q: the binaries serve plain HTTP", sc.JobName, sc.Scheme)
			}
			var targets []string
			for _, st := range sc.StaticConfigs {
				targets = append(targets, st.Targets...)
			}
			if !slices.Contains(targets, target) {
				t.Errorf("%s: targets %q, want %s (compose's %s listens on %s)", sc.JobName, targets, target, want.service, listen)
			}
		}
		if !found {
			t.Errorf("%s: no scrape job %q", prometheusConfig, want.job)
		}
	}
}

func TestAlertRulesAreComplete(t *testing.T) {
	f := loadAlerts(t)
	seen := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s: defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.For == "" {
				t.Errorf("alert %s: no for: one bad evaluation would page", r.Alert)
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("alert %s: severity %q, want one of %q", r.Alert, r.Labels["severity"], severities)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("alert %s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
	for _, name := range requiredAlerts {
		if !seen[name] {
			t.Errorf("%s: no alert %s", alertsPath, name)
		}
	}
}

// TestMonitoringUsesOnlyExportedMetrics catches a renamed or misspelt metric,
// which would make an alert silently never fire or a panel stay empty.
func TestMonitoringUsesOnlyExportedMetrics(t *testing.T) {
	exprs := map[string]string{}
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			exprs[fmt.Sprintf("%s: %s%s", alertsPath, r.Alert, r.Record)] = r.Expr
		}
	}
	d := loadDashboard(t)
	dashExprs := dashboardExprs(d)
	for k, v := range dashExprs {
		exprs[dashboardPath+": "+k] = v
	}
	onDashboard := map[string]bool{}
	for where, expr := range exprs {
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", where, expr)
		}
		for _, n := range names {
			if homeroomMetrics[n] == histogram {
				t.Errorf("%s: %q is a histogram: select its _bucket, _sum or _count series", where, n)
			} else if !knownMetric(n) {
				t.Errorf("%s: %q is not a metric Homeroom exports (nor up, go_*, process_*)", where, n)
			}
			if strings.HasPrefix(where, dashboardPath) {
				onDashboard[baseMetric(n)] = true
			}
		}
	}
	// And the dashboard shows every metric.
	var missing []string
	for m := range homeroomMetrics {
		if !onDashboard[m] {
			missing = append(missing, m)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%s: no panel shows %s", dashboardPath, strings.Join(missing, ", "))
	}
}

func TestDashboardIsWellFormed(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q, title %q: want both", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current Grafana's (36 or later)", d.SchemaVersion)
	}
	dsVar := ""
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			dsVar = v.Name
		}
	}
	if dsVar == "" {
		t.Fatal("no Prometheus datasource variable: the dashboard would be tied to one datasource uid")
	}
	wantUID := "${" + dsVar + "}"
	ids := map[int]string{}
	for _, p := range allPanels(d.Panels) {
		if prev, ok := ids[p.ID]; ok || p.ID == 0 {
			t.Errorf("panel %q: id %d (also %q)", p.Title, p.ID, prev)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d: no title", p.ID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no queries", p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != wantUID {
			t.Errorf("panel %q: datasource %+v, want uid %s", p.Title, p.Datasource, wantUID)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q missing or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != wantUID {
				t.Errorf("panel %q (%s): datasource %+v, want uid %s", p.Title, tg.RefID, tg.Datasource, wantUID)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q (%s): empty query", p.Title, tg.RefID)
			}
			if rest := grafanaVariables.Replace(tg.Expr); strings.Contains(rest, "$") && !strings.Contains(tg.Expr, `"$`) {
				t.Errorf("panel %q (%s): %q uses a variable the dashboard does not define", p.Title, tg.RefID, tg.Expr)
			}
		}
	}
}

// TestAlertTestsCoverEveryAlert asks alerts_test.yml to show each alert both
// firing and silent, so that a rule that always or never fires fails.
func TestAlertTestsCoverEveryAlert(t *testing.T) {
	f := loadAlertTests(t)
	if !slices.Contains(f.RuleFiles, filepath.Base(alertsPath)) {
		t.Errorf("%s: rule_files %q, want %s", alertsTestPath, f.RuleFiles, filepath.Base(alertsPath))
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	var alerts []string
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no test shows %s firing", alertsTestPath, a)
		}
		if !silent[a] {
			t.Errorf("%s: no test shows %s silent", alertsTestPath, a)
		}
	}
	for a := range fires {
		if !slices.Contains(alerts, a) {
			t.Errorf("%s: tests alert %s, which %s does not define", alertsTestPath, a, alertsPath)
		}
	}
}

// --- promtool -------------------------------------------------------------

// promtoolVersion is the Prometheus module version tools/promtool pins, which
// names scripts/ensure-promtool.sh's cache directory.
func promtoolVersion(t *testing.T) string {
	t.Helper()
	f, err := os.Open(promtoolGoModPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`^\s*(?:require\s+)?` + regexp.QuoteMeta(prometheusModule) + `\s+(v\S+)`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("%s: does not require %s", promtoolGoModPath, prometheusModule)
	return ""
}

// promtool finds the binary: $HOMEROOM_PROMTOOL, else the one
// scripts/ensure-promtool.sh caches (`make promtool`).
func promtool(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HOMEROOM_PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err != nil {
			testenv.Unavailable(t, "promtool: HOMEROOM_PROMTOOL=%s: %v", p, err)
		}
		return p
	}
	cache := os.Getenv("HOMEROOM_CACHE")
	if cache == "" {
		cache = "/var/cache/homeroom"
	}
	p := filepath.Join(cache, "promtool-"+promtoolVersion(t), "promtool")
	if _, err := os.Stat(p); err != nil {
		testenv.Unavailable(t, "promtool (run scripts/ensure-promtool.sh or make promtool): %v", err)
	}
	return p
}

func runPromtool(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	t.Run("check config", func(t *testing.T) {
		runPromtool(t, bin, prometheusDir, "check", "config", "--lint-fatal", filepath.Base(prometheusConfig))
	})
	t.Run("check rules", func(t *testing.T) {
		runPromtool(t, bin, prometheusDir, "check", "rules", "--lint-fatal", filepath.Base(alertsPath))
	})
	t.Run("test rules", func(t *testing.T) {
		runPromtool(t, bin, prometheusDir, "test", "rules", filepath.Base(alertsTestPath))
	})
	// promtool has no command to parse a bare query: the dashboard's queries
	// become recording rules of a temporary file, which check rules parses.
	t.Run("dashboard queries parse", func(t *testing.T) {
		exprs := dashboardExprs(loadDashboard(t))
		panels := keys(exprs)
		type rec struct {
			Record string `yaml:"record"`
			Expr   string `yaml:"expr"`
		}
		var rules []rec
		for i, k := range panels {
			rules = append(rules, rec{Record: fmt.Sprintf("dashboard:query_%d:check", i), Expr: grafanaVariables.Replace(exprs[k])})
		}
		b, err := yaml.Marshal(map[string]any{"groups": []map[string]any{{"name": "dashboard", "rules": rules}}})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "check", "rules", "dashboard.yml")
		cmd.Dir = dir
		cmd.WaitDelay = 10 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			// promtool names rules by position: say which panel each one is.
			var lines []string
			for i, k := range panels {
				lines = append(lines, fmt.Sprintf("rule %d (dashboard:query_%d:check) is %s: %s", i+1, i, k, exprs[k]))
			}
			t.Fatalf("promtool check rules (the dashboard's queries): %v\n%s\n%s", err, out, strings.Join(lines, "\n"))
		}
	})
}
