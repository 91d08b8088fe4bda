package content

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver for the stand-in databases

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/extension/sqlengine"
	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

func TestMain(m *testing.M) { os.Exit(standin.Main(m)) }

func load(t testing.TB) Definition {
	t.Helper()
	def, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func generated(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := load(t).Files()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGeneratedFilesAreCurrent fails when queries.yml changed without
// `make content`, or a generated file was edited or left behind.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	files := generated(t)
	for name, want := range files {
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is stale (%v): run make content", name, err)
		}
	}
	for _, dir := range []string{"osquery", "fleet", KolideDir} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && files[filepath.ToSlash(path)] == nil {
				t.Errorf("%s is not generated from queries.yml: remove it", path)
			}
			return err
		})
		if err != nil {
			t.Error(err)
		}
	}
}

func TestParseRejectsBadDefinitions(t *testing.T) {
	valid := `
queries:
  - {name: q, description: d, interval: 60, logging: differential, tables: [fanotify_limits], columns: [c], sql: SELECT 1 AS c}
policies:
  - {name: p, description: d, resolution: r, tables: [fanotify_limits], sql: SELECT 1}
`
	if _, err := Parse([]byte(valid)); err != nil {
		t.Fatalf("valid definition rejected: %v", err)
	}
	bad := map[string]string{
		"unknown key":    strings.Replace(valid, "interval: 60", "interval: 60, every: 5", 1),
		"dollar in sql":  strings.Replace(valid, "SELECT 1 AS c", "SELECT '$HOME' AS c", 1),
		"bad logging":    strings.Replace(valid, "differential", "sometimes", 1),
		"no interval":    strings.Replace(valid, "interval: 60", "interval: 0", 1),
		"duplicate name": strings.Replace(valid, "name: p", "name: q", 1),
		"no resolution":  strings.Replace(valid, "resolution: r, ", "", 1),
		"no tables":      strings.Replace(valid, "tables: [fanotify_limits], sql: SELECT 1}", "sql: SELECT 1}", 1),
	}
	for name, doc := range bad {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPack(t *testing.T) {
	var pack struct {
		Platform  string   `json:"platform"`
		Discovery []string `json:"discovery"`
		Queries   map[string]struct {
			Query       string `json:"query"`
			Interval    int    `json:"interval"`
			Platform    string `json:"platform"`
			Snapshot    bool   `json:"snapshot"`
			Removed     bool   `json:"removed"`
			Description string `json:"description"`
			Value       string `json:"value"`
		} `json:"queries"`
	}
	dec := json.NewDecoder(bytes.NewReader(generated(t)[PackFile]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&pack); err != nil {
		t.Fatalf("%s: %v", PackFile, err)
	}
	if pack.Platform != "linux" || !slices.Equal(pack.Discovery, []string{Discovery}) {
		t.Errorf("pack platform %q discovery %q", pack.Platform, pack.Discovery)
	}
	def := load(t)
	if len(pack.Queries) != len(def.Queries) {
		t.Errorf("pack has %d queries, queries.yml %d", len(pack.Queries), len(def.Queries))
	}
	for _, q := range def.Queries {
		p, ok := pack.Queries[q.Name]
		if !ok || p.Query != q.SQL || p.Interval != q.Interval || p.Platform != "linux" || p.Description == "" {
			t.Errorf("pack query %s = %+v", q.Name, p)
		}
		if p.Snapshot != (q.Logging == "snapshot") || p.Removed != (q.Logging == "differential") {
			t.Errorf("pack query %s: snapshot %v removed %v for logging %s", q.Name, p.Snapshot, p.Removed, q.Logging)
		}
	}
}

// Keys Fleet accepts in query (report) and policy specs; Fleet 4.83 and later
// fail a GitOps run on any other key.
var (
	fleetQueryKeys  = []string{"name", "description", "query", "interval", "platform", "logging", "min_osquery_version", "observer_can_run", "automations_enabled", "discard_data", "labels_include_any"}
	fleetPolicyKeys = []string{"name", "description", "resolution", "query", "platform", "critical", "calendar_events_enabled", "webhooks_and_tickets_enabled", "labels_include_any", "labels_exclude_any"}
)

// checkSpec asserts a Fleet spec holds the required keys with values and no
// key outside known.
func checkSpec(t *testing.T, where string, spec map[string]any, required, known []string) {
	t.Helper()
	for _, k := range required {
		if v, ok := spec[k]; !ok || v == "" || v == nil {
			t.Errorf("%s: %q missing", where, k)
		}
	}
	for k := range spec {
		if !slices.Contains(known, k) {
			t.Errorf("%s: unknown key %q", where, k)
		}
	}
	if p, ok := spec["platform"]; ok && p != "linux" {
		t.Errorf("%s: platform %v", where, p)
	}
}

var (
	queryRequired  = []string{"name", "description", "query", "interval", "platform", "logging"}
	policyRequired = []string{"name", "description", "resolution", "query", "platform"}
)

// fleetctlSeparator is where fleetctl apply splits a spec file.
var fleetctlSeparator = regexp.MustCompile(`(?m:^---[\t ]*)`)

// fleetctlDocuments splits a spec file as fleetctl apply does (Fleet's
// pkg/spec SplitYaml): at every line starting with ---, keeping each chunk
// that is not blank once trimmed. Each chunk must then hold a kind and a
// spec, or fleetctl applies nothing.
func fleetctlDocuments(file []byte) []string {
	var docs []string
	for _, chunk := range fleetctlSeparator.Split(string(file), -1) {
		if chunk = strings.TrimSpace(chunk); chunk != "" {
			docs = append(docs, chunk)
		}
	}
	return docs
}

func TestFleetctlSpecs(t *testing.T) {
	def := load(t)
	kinds := map[string]int{}
	for i, doc := range fleetctlDocuments(generated(t)[FleetctlFile]) {
		var d struct {
			APIVersion string         `yaml:"apiVersion"`
			Kind       string         `yaml:"kind"`
			Spec       map[string]any `yaml:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		where := fmt.Sprintf("%s document %d", FleetctlFile, i)
		if d.APIVersion != "v1" {
			t.Errorf("%s: apiVersion %q", where, d.APIVersion)
		}
		switch d.Kind {
		case "query":
			checkSpec(t, where, d.Spec, queryRequired, fleetQueryKeys)
		case "policy":
			checkSpec(t, where, d.Spec, policyRequired, slices.DeleteFunc(slices.Clone(fleetPolicyKeys), func(k string) bool {
				return k == "webhooks_and_tickets_enabled" // GitOps only
			}))
		default:
			t.Errorf("%s: kind %q", where, d.Kind)
		}
		kinds[d.Kind]++
	}
	if kinds["query"] != len(def.Queries) || kinds["policy"] != len(def.Policies) {
		t.Errorf("fleetctl specs hold %v, queries.yml %d queries and %d policies", kinds, len(def.Queries), len(def.Policies))
	}
}

func TestGitOpsLibraries(t *testing.T) {
	files, def := generated(t), load(t)
	var queries, policies []map[string]any
	if err := yaml.Unmarshal(files[GitOpsQueriesFile], &queries); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(files[GitOpsPoliciesFile], &policies); err != nil {
		t.Fatal(err)
	}
	if len(queries) != len(def.Queries) || len(policies) != len(def.Policies) {
		t.Fatalf("GitOps files hold %d queries and %d policies", len(queries), len(policies))
	}
	for i, q := range queries {
		checkSpec(t, fmt.Sprintf("%s item %d", GitOpsQueriesFile, i), q, queryRequired, fleetQueryKeys)
	}
	for i, p := range policies {
		checkSpec(t, fmt.Sprintf("%s item %d", GitOpsPoliciesFile, i), p, policyRequired, fleetPolicyKeys)
		if flagged := p["webhooks_and_tickets_enabled"] == true; flagged != def.Policies[i].Webhook {
			t.Errorf("policy %v: webhooks_and_tickets_enabled %v", p["name"], flagged)
		}
	}
}

func TestGitOpsExample(t *testing.T) {
	files := generated(t)
	var ex struct {
		Reports      []struct{ Path string } `yaml:"reports"`
		Policies     []struct{ Path string } `yaml:"policies"`
		AgentOptions struct {
			Extensions map[string]struct{ Channel, Platform string } `yaml:"extensions"`
		} `yaml:"agent_options"`
		OrgSettings struct {
			WebhookSettings struct {
				FailingPolicies struct {
					Enable         bool   `yaml:"enable_failing_policies_webhook"`
					DestinationURL string `yaml:"destination_url"`
					HostBatchSize  int    `yaml:"host_batch_size"`
				} `yaml:"failing_policies_webhook"`
			} `yaml:"webhook_settings"`
		} `yaml:"org_settings"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(files[GitOpsExampleFile]))
	dec.KnownFields(true)
	if err := dec.Decode(&ex); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(GitOpsExampleFile)
	for _, ref := range append(ex.Reports, ex.Policies...) {
		if files[filepath.ToSlash(filepath.Join(dir, ref.Path))] == nil {
			t.Errorf("example refers to %s, which is not generated", ref.Path)
		}
	}
	if len(ex.Reports) != 1 || len(ex.Policies) != 1 {
		t.Errorf("example lists %d report and %d policy files, want 1 each", len(ex.Reports), len(ex.Policies))
	}
	// Fleet's TUF convention: target extensions/<name>, binary <name>.ext.
	if ext, ok := ex.AgentOptions.Extensions["fanotify"]; !ok || ext.Channel == "" || ext.Platform != "linux" {
		t.Errorf("agent_options.extensions.fanotify = %+v", ext)
	}
	wh := ex.OrgSettings.WebhookSettings.FailingPolicies
	if !wh.Enable || !strings.HasPrefix(wh.DestinationURL, "$") {
		t.Errorf("failing_policies_webhook = %+v, want enabled with the URL from the environment", wh)
	}
}

// extensionTables are the tables of the extension, with their columns.
func extensionTables(t testing.TB) []*tables.Table {
	env := tables.NewEnv(config.Default(), slog.New(slog.DiscardHandler))
	t.Cleanup(env.Close)
	return tables.All(env)
}

// coreTables are stand-ins for the core osquery tables the content reads,
// with their real columns.
var coreTables = map[string][]string{
	"osquery_registry": {"registry", "name", "owner_uuid", "internal", "active"},
	"system_controls":  {"name", "oid", "subsystem", "current_value", "config_value", "type", "field_name"},
}

// standIn opens an empty SQLite database holding only the named tables, so
// that a statement reading any other table fails to prepare.
func standIn(t *testing.T, names []string) *sql.DB {
	t.Helper()
	columns := map[string][]string{}
	for _, tbl := range extensionTables(t) {
		for _, c := range tbl.Columns {
			columns[tbl.Name] = append(columns[tbl.Name], c.Name)
		}
	}
	for name, cols := range coreTables {
		columns[name] = cols
	}
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	t.Cleanup(func() { db.Close() })
	for _, name := range names {
		cols, ok := columns[name]
		if !ok {
			t.Fatalf("table %s is neither the extension's nor a known core table", name)
		}
		if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (%s)", name, strings.Join(cols, ", "))); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// columnsOf runs sql and returns its result columns and rows.
func columnsOf(t *testing.T, db *sql.DB, query string) ([]string, [][]string) {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols, out
}

// perMarkTables have a row per mark or watch: too big to ship fleet-wide.
var perMarkTables = []string{"fanotify_marks", "inotify_watches"}

// TestSQLPrepares prepares every statement against stand-ins of exactly the
// tables it declares, and checks the columns it returns.
func TestSQLPrepares(t *testing.T) {
	def := load(t)
	for _, q := range def.Queries {
		t.Run(q.Name, func(t *testing.T) {
			cols, _ := columnsOf(t, standIn(t, q.Tables), q.SQL)
			if !slices.Equal(cols, q.Columns) {
				t.Errorf("columns %v, queries.yml says %v", cols, q.Columns)
			}
			for _, name := range q.Tables {
				if slices.Contains(perMarkTables, name) {
					t.Errorf("reads per-mark table %s", name)
				}
			}
		})
	}
	for _, p := range def.Policies {
		t.Run(p.Name, func(t *testing.T) {
			columnsOf(t, standIn(t, p.Tables), p.SQL)
		})
	}
	files := generated(t)
	for _, c := range def.CoreChecks {
		t.Run(c.Name, func(t *testing.T) {
			if cols, _ := columnsOf(t, standIn(t, c.Tables), c.SQL); !slices.Equal(cols, c.Columns) {
				t.Errorf("columns %v, queries.yml says %v", cols, c.Columns)
			}
			// The shipped file, comments included, is what Kolide users paste.
			columnsOf(t, standIn(t, c.Tables), string(files[KolideDir+"/"+c.Name+".sql"]))
		})
	}
	t.Run("discovery", func(t *testing.T) {
		columnsOf(t, standIn(t, []string{"osquery_registry"}), Discovery)
	})
}

func TestSysctlCheckStatuses(t *testing.T) {
	check := load(t).CoreChecks[0]
	db := standIn(t, check.Tables)
	// Too low, high enough, and no fs.fanotify settings (before Linux 5.13).
	exec(t, db, `INSERT INTO system_controls (name, current_value) VALUES
		('fs.inotify.max_user_watches', '8192'), ('fs.inotify.max_user_instances', '1024')`)
	cols, rows := columnsOf(t, db, check.SQL)
	got := map[string][]string{}
	for _, r := range rows {
		got[r[0]] = r
	}
	status, remediation := slices.Index(cols, "KOLIDE_CHECK_STATUS"), slices.Index(cols, "remediation")
	want := map[string]string{
		"fs.inotify.max_user_watches":   "FAIL",
		"fs.inotify.max_user_instances": "PASS",
		"fs.fanotify.max_user_marks":    "INAPPLICABLE",
		"fs.fanotify.max_user_groups":   "INAPPLICABLE",
	}
	for name, w := range want {
		if got[name] == nil || got[name][status] != w {
			t.Errorf("%s: %v, want %s", name, got[name], w)
		}
	}
	wantFix := "sysctl -w fs.inotify.max_user_watches=524288 && echo 'fs.inotify.max_user_watches = 524288' > /etc/sysctl.d/90-inotify-max_user_watches.conf"
	if fix := got["fs.inotify.max_user_watches"][remediation]; fix != wantFix {
		t.Errorf("remediation %q, want %q", fix, wantFix)
	}
	if fix := got["fs.inotify.max_user_instances"][remediation]; fix != "" {
		t.Errorf("passing row has remediation %q", fix)
	}
}

// TestTopHoldersRounding checks the rounding that keeps differential
// results quiet, on stand-in rows.
func TestTopHoldersRounding(t *testing.T) {
	q := queryNamed(t, "fanotify_top_holders")
	db := standIn(t, q.Tables)
	exec(t, db,
		"INSERT INTO inotify_instances (charged_uid, charged_user_ns, cgroup, watches) VALUES (1000, 1, '/user.slice', 52345), (1000, 1, '/user.slice', 7)",
		"INSERT INTO fanotify_groups (charged_uid, charged_user_ns, cgroup, marks) VALUES (0, 1, '/system.slice/av.service', 0)")
	_, rows := columnsOf(t, db, q.SQL)
	want := [][]string{
		{"1000", "1", "/user.slice", "0", "2", "0", "50000"},
		{"0", "1", "/system.slice/av.service", "1", "0", "0", "0"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows %v, want %v", rows, want)
	}
}

func queryNamed(t *testing.T, name string) Query {
	t.Helper()
	for _, q := range load(t).Queries {
		if q.Name == name {
			return q
		}
	}
	t.Fatalf("no query %s in queries.yml", name)
	return Query{}
}

// newEngine serves the extension's real tables, read from this host.
func newEngine(t testing.TB, cfg config.Config) *sqlengine.Engine {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	env := tables.NewEnv(cfg, log)
	t.Cleanup(env.Close)
	engine, err := sqlengine.New(tables.NewRunner(tables.All(env), time.Minute, 4, log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	return engine
}

// onlyExtensionTables reports whether every table is the extension's.
func onlyExtensionTables(t testing.TB, names []string) bool {
	var ext []string
	for _, tbl := range extensionTables(t) {
		ext = append(ext, tbl.Name)
	}
	for _, n := range names {
		if !slices.Contains(ext, n) {
			return false
		}
	}
	return true
}

// TestQueriesRunOnEngine runs every query and policy reading only the
// extension's tables on this host, through the embedded engine.
func TestQueriesRunOnEngine(t *testing.T) {
	def, engine := load(t), newEngine(t, config.Default())
	for _, q := range def.Queries {
		t.Run(q.Name, func(t *testing.T) {
			if !onlyExtensionTables(t, q.Tables) {
				t.Fatalf("reads a table the extension does not have: %v", q.Tables)
			}
			res, err := engine.Query(context.Background(), q.SQL)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Columns, q.Columns) {
				t.Errorf("columns %v, want %v", res.Columns, q.Columns)
			}
		})
	}
	for _, p := range def.Policies {
		t.Run(p.Name, func(t *testing.T) {
			res, err := engine.Query(context.Background(), p.SQL)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) > 1 {
				t.Errorf("policy returned %d rows, want 0 or 1", len(res.Rows))
			}
		})
	}
}

// TestPoliciesFailAtRisk makes a limit critical and checks that both
// policies fail and that the at-risk query reports it with its fix. The
// thresholds are lowered so that the one inotify instance this test holds
// counts as critical: the host's own usage decides nothing.
func TestPoliciesFailAtRisk(t *testing.T) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cfg := config.Default()
	cfg.RiskWarningPct, cfg.RiskCriticalPct = 0.01, 0.02
	def, engine := load(t), newEngine(t, cfg)

	for _, p := range def.Policies {
		res, err := engine.Query(context.Background(), p.SQL)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Rows) != 0 {
			t.Errorf("policy %q passes with a critical limit", p.Name)
		}
	}

	res, err := engine.Query(context.Background(), queryNamed(t, "fanotify_limits_at_risk").SQL)
	if err != nil {
		t.Fatal(err)
	}
	col := func(row []string, name string) string { return row[slices.Index(res.Columns, name)] }
	uid := strconv.Itoa(os.Geteuid())
	found := false
	for _, row := range res.Rows {
		if col(row, "name") == "max_user_instances" && col(row, "uid") == uid {
			found = true
			if col(row, "risk") != "critical" || col(row, "remediation") == "" || col(row, "recommended") == "" {
				t.Errorf("at-risk row %v lacks risk, remediation or recommended value", row)
			}
		}
	}
	if !found {
		t.Errorf("fanotify_limits_at_risk has no max_user_instances row for uid %s: %v", uid, res.Rows)
	}
}

// TestPoliciesOnLimitStates runs both policies over stand-in limits in
// each state a host can be in. A limit rated unknown fails them unless it is
// a child namespace's own limit, which only its members can read
// (limit_value NULL): that one is unlimited unless lowered inside, and its
// usage is rated again where its owner is charged.
func TestPoliciesOnLimitStates(t *testing.T) {
	const critical, warning = "fanotify - no inotify/fanotify limit critical", "fanotify - no inotify/fanotify limit at warning"
	states := []struct {
		name, row string
		passes    []string
	}{
		{"ok", "'ok', '', 128", []string{critical, warning}},
		{"warning", "'warning', 'usage', 128", []string{critical}},
		{"critical", "'critical', 'projection', 8192", nil},
		{"processes not visible", "'unknown', 'no_access', 128", nil},
		{"scan incomplete", "'unknown', 'incomplete', 128", nil},
		{"child namespace's own limit", "'unknown', 'no_access', NULL", []string{critical, warning}},
	}
	for _, state := range states {
		t.Run(state.name, func(t *testing.T) {
			for _, p := range load(t).Policies {
				db := standIn(t, p.Tables)
				exec(t, db,
					"INSERT INTO fanotify_limits (name, scope, risk, risk_reason, limit_value) VALUES ('max_user_instances', 'user', 'ok', '', 128)",
					"INSERT INTO fanotify_limits (name, scope, risk, risk_reason, limit_value) VALUES ('max_user_watches', 'user', "+state.row+")")
				_, rows := columnsOf(t, db, p.SQL)
				if passes := len(rows) == 1; passes != slices.Contains(state.passes, p.Name) {
					t.Errorf("%q passes: %v", p.Name, passes)
				}
			}
		})
	}
}

// TestPoliciesFailUnseen runs both policies with the extension in a pid
// namespace of its own, as in a pod without hostPID: it cannot see the
// processes that spend the per-user budgets, and no policy may pass.
func TestPoliciesFailUnseen(t *testing.T) {
	unshare, err := osexec.LookPath("unshare")
	if err != nil {
		t.Skip("unshare is not installed")
	}
	bin := standin.BuildBinary(t)
	defaults := filepath.Join(t.TempDir(), "fanotify.json")
	if err := os.WriteFile(defaults, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range load(t).Policies {
		out, err := osexec.Command(unshare, "--pid", "--fork", "--mount", "--mount-proc", bin, "query", "--json", "--config", defaults, p.SQL).Output()
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		var rows []map[string]string
		if err := json.Unmarshal(out, &rows); err != nil {
			t.Fatalf("%s: %v in %q", p.Name, err, out)
		}
		if len(rows) != 0 {
			t.Errorf("%q passes where the extension cannot see the host's processes", p.Name)
		}
	}
}

// TestREADMEKeepsUp fails when the README's copy of a core check or of the
// alerting policy, or its list of shipped files, falls behind queries.yml.
func TestREADMEKeepsUp(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	def := load(t)
	for _, c := range def.CoreChecks {
		if !strings.Contains(string(readme), c.SQL) {
			t.Errorf("README.md lacks the current SQL of %s", c.Name)
		}
	}
	// The README shows the query of the policy that alerts.
	for _, p := range def.Policies {
		if p.Webhook && !strings.Contains(string(readme), p.SQL) {
			t.Errorf("README.md lacks the current SQL of policy %q", p.Name)
		}
	}
	for name := range generated(t) {
		if !strings.Contains(string(readme), filepath.Base(name)) {
			t.Errorf("README.md does not mention %s", name)
		}
	}
}

// exec runs statements on a stand-in database.
func exec(t *testing.T, db *sql.DB, statements ...string) {
	t.Helper()
	for _, s := range statements {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
}

func TestRecentOverflowsWindow(t *testing.T) {
	q := queryNamed(t, "fanotify_recent_overflows")
	db := standIn(t, q.Tables)
	now := time.Now().Unix()
	exec(t, db, fmt.Sprintf(`INSERT INTO fanotify_events (eid, time, action, overflow) VALUES
		('7', %d, 'OVERFLOW', 1), ('8', %d, 'MODIFY', 0), ('3', %d, 'OVERFLOW', 1)`, now-60, now-30, now-7200))
	_, rows := columnsOf(t, db, q.SQL)
	if want := [][]string{{"7", strconv.FormatInt(now-60, 10), "OVERFLOW"}}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("rows %v, want only the overflow of the last hour %v", rows, want)
	}
}

func TestMountCoverageCounts(t *testing.T) {
	q := queryNamed(t, "fanotify_mount_coverage")
	db := standIn(t, q.Tables)
	exec(t, db,
		// Namespace 1: /dev/sda1 mounted twice, one mount marked; a tmpfs
		// under a superblock mark; a mount of 0:31 that another covers.
		// Namespace 2: /dev/sda1 again, unmarked.
		`INSERT INTO mount_points (mnt_ns, mount_id, device, reachable, fanotify_mount_marks, fanotify_fs_marks) VALUES
			(1, 10, '8:1', 1, 1, 0), (1, 11, '8:1', 1, 0, 0), (1, 12, '0:30', 1, 0, 1), (1, 13, '0:31', 0, 0, 0),
			(2, 20, '8:1', 1, NULL, NULL)`,
		`INSERT INTO fanotify_limits (name, scope, uid, user_ns, limit_value, headroom, risk) VALUES
			('max_user_marks', 'user', 0, 4026531837, 8192, 1, 'ok'),
			('max_user_marks', 'user', 1000, 4026531837, 8192, 0, 'critical')`)
	cols, rows := columnsOf(t, db, q.SQL)
	got := map[string]string{}
	for i, c := range cols {
		got[c] = rows[0][i]
	}
	// Two mounts of 8:1 are uncovered: two mount marks needed, or one
	// filesystem mark; root has room for one. The covered mount of 0:31
	// cannot be marked at all.
	want := map[string]string{
		"mount_namespaces": "2", "mounts": "5", "uncovered_mounts": "2", "filesystems": "3",
		"uncovered_filesystems": "1", "marks_limit": "8192", "fits_mount_marks": "0",
		"fits_filesystem_marks": "1", "marks_risk": "ok",
	}
	if len(rows) != 1 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows %v, want one row %v", rows, want)
	}
}
