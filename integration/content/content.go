// Package content renders the queries, policies and checks of queries.yml
// into the formats osquery, Fleet and Kolide read: an osquery pack, fleetctl
// specs, Fleet GitOps library files with an example default.yml, and a Kolide
// check. queries.yml is the only place to edit; `make content` writes the
// files Files returns.
package content

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed queries.yml
var definitionYAML []byte

// Platform is the only platform the extension runs on.
const Platform = "linux"

// Discovery makes the pack run only where the extension is loaded.
const Discovery = "SELECT 1 FROM osquery_registry WHERE registry='table' AND name='fanotify_limits'"

// LoggingModes are Fleet's logging values; the pack maps them to osquery's
// snapshot and removed options.
var LoggingModes = []string{"differential", "differential_ignore_removals", "snapshot"}

// Definition is queries.yml.
type Definition struct {
	Queries    []Query  `yaml:"queries"`
	Policies   []Policy `yaml:"policies"`
	CoreChecks []Check  `yaml:"core_checks"`
}

// Query is a scheduled query (a Fleet report, an osquery pack query).
type Query struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Notes       string   `yaml:"notes"` // why its columns suit differential logging
	Interval    int      `yaml:"interval"`
	Logging     string   `yaml:"logging"`
	Tables      []string `yaml:"tables"`
	Columns     []string `yaml:"columns"`
	SQL         string   `yaml:"sql"`
}

// Policy passes on a host when its query returns a row.
type Policy struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Resolution  string `yaml:"resolution"`
	Critical    bool   `yaml:"critical"`
	// Webhook turns on the failing-policies webhook (and ticket
	// integrations) for this policy in Fleet GitOps.
	Webhook bool     `yaml:"webhook"`
	Tables  []string `yaml:"tables"`
	SQL     string   `yaml:"sql"`
}

// Check runs on core osquery alone and follows Kolide's check convention:
// at least one row, each with KOLIDE_CHECK_STATUS.
type Check struct {
	Name        string   `yaml:"name"`
	Description string   `yaml:"description"`
	Resolution  string   `yaml:"resolution"`
	Tables      []string `yaml:"tables"`
	Columns     []string `yaml:"columns"`
	SQL         string   `yaml:"sql"`
}

// Load parses and validates the embedded queries.yml.
func Load() (Definition, error) {
	return Parse(definitionYAML)
}

// Parse decodes a definition, rejecting unknown keys, and validates it.
func Parse(data []byte) (Definition, error) {
	var d Definition
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return Definition{}, fmt.Errorf("queries.yml: %w", err)
	}
	d.trim()
	if err := d.validate(); err != nil {
		return Definition{}, fmt.Errorf("queries.yml: %w", err)
	}
	return d, nil
}

func (d *Definition) trim() {
	for i := range d.Queries {
		d.Queries[i].SQL = strings.TrimSpace(d.Queries[i].SQL)
	}
	for i := range d.Policies {
		d.Policies[i].SQL = strings.TrimSpace(d.Policies[i].SQL)
	}
	for i := range d.CoreChecks {
		d.CoreChecks[i].SQL = strings.TrimSpace(d.CoreChecks[i].SQL)
	}
}

func (d Definition) validate() error {
	seen := map[string]bool{}
	named := func(kind, name, description, sql string, tables []string) error {
		switch {
		case name == "" || description == "" || sql == "" || len(tables) == 0:
			return fmt.Errorf("%s %q: name, description, tables and sql are required", kind, name)
		case seen[name]:
			return fmt.Errorf("%s %q: duplicate name", kind, name)
		case strings.Contains(sql, "$"):
			// fleetctl gitops expands $VAR in YAML outside descriptions.
			return fmt.Errorf("%s %q: sql must not contain $ (Fleet GitOps would expand it)", kind, name)
		}
		seen[name] = true
		return nil
	}
	for _, q := range d.Queries {
		if err := named("query", q.Name, q.Description, q.SQL, q.Tables); err != nil {
			return err
		}
		if q.Interval <= 0 || !slices.Contains(LoggingModes, q.Logging) || len(q.Columns) == 0 {
			return fmt.Errorf("query %q: needs interval > 0, columns and logging one of %v", q.Name, LoggingModes)
		}
	}
	for _, p := range d.Policies {
		if err := named("policy", p.Name, p.Description, p.SQL, p.Tables); err != nil {
			return err
		}
		if p.Resolution == "" {
			return fmt.Errorf("policy %q: resolution is required", p.Name)
		}
	}
	for _, c := range d.CoreChecks {
		if err := named("core check", c.Name, c.Description, c.SQL, c.Tables); err != nil {
			return err
		}
		if c.Resolution == "" || !slices.Contains(c.Columns, "KOLIDE_CHECK_STATUS") {
			return fmt.Errorf("core check %q: needs a resolution and a KOLIDE_CHECK_STATUS column", c.Name)
		}
	}
	if len(d.Queries) == 0 || len(d.Policies) == 0 {
		return errors.New("at least one query and one policy are required")
	}
	return nil
}

// Generated files, relative to integration/content.
const (
	PackFile           = "osquery/fanotify.pack.json"
	FleetctlFile       = "fleet/fanotify.fleetctl.yml"
	GitOpsQueriesFile  = "fleet/lib/fanotify.queries.yml"
	GitOpsPoliciesFile = "fleet/lib/fanotify.policies.yml"
	GitOpsExampleFile  = "fleet/default.example.yml"
	KolideDir          = "kolide"
)

const generatedHeader = "Generated from integration/content/queries.yml by `make content`: do not edit."

// Files renders every generated file, keyed by path relative to
// integration/content.
func (d Definition) Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	var err error
	if files[PackFile], err = d.Pack(); err != nil {
		return nil, err
	}
	if files[FleetctlFile], err = d.FleetctlSpecs(); err != nil {
		return nil, err
	}
	if files[GitOpsQueriesFile], err = yamlFile("Fleet GitOps reports: list this file under `reports:` (`queries:` before Fleet 4.83).", d.fleetQueries()); err != nil {
		return nil, err
	}
	if files[GitOpsPoliciesFile], err = yamlFile("Fleet GitOps policies: list this file under `policies:`.", d.gitOpsPolicies()); err != nil {
		return nil, err
	}
	files[GitOpsExampleFile] = d.gitOpsExample()
	for _, c := range d.CoreChecks {
		files[KolideDir+"/"+c.Name+".sql"] = c.file()
	}
	return files, nil
}

// packQuery is one query of an osquery pack.
type packQuery struct {
	Query       string `json:"query"`
	Interval    int    `json:"interval"`
	Platform    string `json:"platform"`
	Snapshot    bool   `json:"snapshot"`
	Removed     bool   `json:"removed"`
	Description string `json:"description"`
	Value       string `json:"value"`
}

// Pack renders the osquery pack: every query, run only where discovery
// finds the extension's tables.
func (d Definition) Pack() ([]byte, error) {
	queries := map[string]packQuery{}
	for _, q := range d.Queries {
		queries[q.Name] = packQuery{
			Query:       q.SQL,
			Interval:    q.Interval,
			Platform:    Platform,
			Snapshot:    q.Logging == "snapshot",
			Removed:     q.Logging == "differential",
			Description: q.Description,
			Value:       q.Notes,
		}
	}
	pack := struct {
		Platform  string               `json:"platform"`
		Discovery []string             `json:"discovery"`
		Queries   map[string]packQuery `json:"queries"`
	}{Platform, []string{Discovery}, queries}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep SQL's < and > readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(pack); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fleetQuery is a Fleet query (report) spec, as fleetctl and GitOps read it.
type fleetQuery struct {
	Name               string `yaml:"name"`
	Description        string `yaml:"description"`
	Query              string `yaml:"query"`
	Interval           int    `yaml:"interval"`
	Platform           string `yaml:"platform"`
	Logging            string `yaml:"logging"`
	ObserverCanRun     bool   `yaml:"observer_can_run"`
	AutomationsEnabled bool   `yaml:"automations_enabled"`
}

// fleetPolicy is a Fleet policy spec; the GitOps form may add the webhook
// flag, which fleetctl apply does not know.
type fleetPolicy struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Resolution  string `yaml:"resolution"`
	Query       string `yaml:"query"`
	Platform    string `yaml:"platform"`
	Critical    bool   `yaml:"critical"`
	Webhook     bool   `yaml:"webhooks_and_tickets_enabled,omitempty"`
}

func (d Definition) fleetQueries() []fleetQuery {
	out := make([]fleetQuery, 0, len(d.Queries))
	for _, q := range d.Queries {
		out = append(out, fleetQuery{
			Name:        q.Name,
			Description: q.Description + " " + q.Notes,
			Query:       q.SQL,
			Interval:    q.Interval,
			Platform:    Platform,
			Logging:     q.Logging,
			// Results go to the log destination; observers may run them live.
			ObserverCanRun:     true,
			AutomationsEnabled: true,
		})
	}
	return out
}

func (d Definition) fleetPolicies() []fleetPolicy {
	out := make([]fleetPolicy, 0, len(d.Policies))
	for _, p := range d.Policies {
		out = append(out, fleetPolicy{
			Name:        p.Name,
			Description: p.Description,
			Resolution:  p.Resolution,
			Query:       p.SQL,
			Platform:    Platform,
			Critical:    p.Critical,
		})
	}
	return out
}

func (d Definition) gitOpsPolicies() []fleetPolicy {
	out := d.fleetPolicies()
	for i, p := range d.Policies {
		out[i].Webhook = p.Webhook
	}
	return out
}

// FleetctlSpecs renders one `fleetctl apply` file: a kind: query document
// per query and a kind: policy document per policy.
func (d Definition) FleetctlSpecs() ([]byte, error) {
	type spec struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       any    `yaml:"spec"`
	}
	var docs []spec
	for _, q := range d.fleetQueries() {
		docs = append(docs, spec{"v1", "query", q})
	}
	for _, p := range d.fleetPolicies() {
		docs = append(docs, spec{"v1", "policy", p})
	}
	var buf bytes.Buffer
	// The comments open the first document, after its ---: fleetctl splits
	// the file at every --- and rejects a chunk of comments alone as a
	// document without kind and spec.
	buf.WriteString("---\n# fleetctl apply -f fanotify.fleetctl.yml (Fleet 4.83 and later warn that kind: query is now kind: report).\n# " + generatedHeader + "\n")
	for i, doc := range docs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		if err := encodeYAML(&buf, doc); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func yamlFile(purpose string, v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("# " + purpose + "\n# " + generatedHeader + "\n")
	if err := encodeYAML(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeYAML(buf *bytes.Buffer, v any) error {
	enc := yaml.NewEncoder(buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return err
	}
	return enc.Close()
}

// file renders a core check as an SQL file with its description and
// resolution as comments.
func (c Check) file() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "-- %s (Kolide check; core osquery only)\n-- %s\n--\n", c.Name, generatedHeader)
	for _, para := range []string{c.Description, "Fix: " + c.Resolution} {
		for _, line := range wrap(para, 76) {
			b.WriteString("-- " + line + "\n")
		}
	}
	b.WriteString(c.SQL + ";\n")
	return []byte(b.String())
}

// wrap breaks text into lines of at most width characters at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return append(lines, line)
}
