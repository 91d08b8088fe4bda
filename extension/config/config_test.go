package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().validate(); err != nil {
		t.Fatalf("Default() fails its own validation: %v", err)
	}
}

func TestDefaultReturnsIndependentCopies(t *testing.T) {
	a := Default()
	a.Collector.Events[0] = "access"
	if b := Default(); b.Collector.Events[0] == "access" {
		t.Fatal("changing one Default() changed the next one: the events slice is shared")
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fanotify.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The file at DefaultPath is optional.
func TestLoadMissingDefaultFileYieldsDefaults(t *testing.T) {
	if _, err := os.Stat(DefaultPath); !errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s exists here (%v)", DefaultPath, err)
	}
	cfg, err := LoadDefault()
	if err != nil {
		t.Fatalf("missing file: got error %v, want none", err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("missing file: got %+v, want defaults", cfg)
	}
}

// The default file named on purpose must exist, as any named file must.
func TestLoadMissingDefaultFileNamedIsAnError(t *testing.T) {
	if _, err := os.Stat(DefaultPath); !errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s exists here (%v)", DefaultPath, err)
	}
	cfg, err := Load(DefaultPath)
	if err == nil || err.Error() != "config "+DefaultPath+": no such file or directory" {
		t.Errorf("got error %v, want one naming %s", err, DefaultPath)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v with the error, want defaults", cfg)
	}
}

// A file named elsewhere that does not exist is a mistake (a typo) that
// must show, not be replaced by the defaults unseen.
func TestLoadMissingNamedFileIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fanotify.jsn")
	cfg, err := Load(path)
	if err == nil || err.Error() != "config "+path+": no such file or directory" {
		t.Errorf("got error %v, want one naming %s once", err, path)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v with the error, want defaults", cfg)
	}
}

func TestLoadAppliesKeysAndKeepsOthersDefault(t *testing.T) {
	path := writeConfig(t, `{
		"generate_timeout_s": 30,
		"risk_warning_pct": 60.5,
		"collector": {"enabled": true, "paths": ["/srv", "/home"], "mark": "mount", "events": ["open"]}
	}`)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.GenerateTimeoutS = 30
	want.RiskWarningPct = 60.5
	want.Collector.Enabled = true
	want.Collector.Paths = []string{"/srv", "/home"}
	want.Collector.Mark = "mount"
	want.Collector.Events = []string{"open"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

// Every failure hands back the defaults along with the error, so the
// extension keeps serving.
func TestLoadErrorYieldsDefaults(t *testing.T) {
	path := writeConfig(t, `{"generate_timeout_s": 30, "no_such_key": 1}`)
	cfg, err := Load(path)
	if err == nil {
		t.Fatal("unknown key accepted")
	}
	for _, want := range []string{path, `"no_such_key"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v with the error, want defaults", cfg)
	}
}

func TestLoadUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Load(dir) // a directory cannot be read as a file
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got error %v, want one naming %s", err, dir)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("got %+v with the error, want defaults", cfg)
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // substrings of the error
	}{
		{"unknown key", `{"generate_timeout": 5}`, []string{`"generate_timeout"`, "unknown key"}},
		{"unknown collector key", `{"collector": {"path": ["/"]}}`, []string{`key "collector.path": unknown key`}},
		{"key in another case", `{"MAX_ROWS": 10}`, []string{`key "MAX_ROWS": unknown key`}},
		{"parent key in another case", `{"Collector": {"enabled": false}}`, []string{`key "Collector": unknown key`}},
		{"collector key in another case", `{"collector": {"ENABLED": false}}`, []string{`key "collector.ENABLED": unknown key`}},
		{"repeated key in another case", `{"risk_warning_pct": 80, "Risk_Warning_Pct": 95}`, []string{`key "Risk_Warning_Pct": unknown key`}},
		{"repeated key", `{"max_rows": 0, "max_rows": 10}`, []string{`key "max_rows": set more than once`}},
		{"repeated collector key", `{"collector": {"paths": ["/a"], "paths": ["/b"]}}`, []string{`key "collector.paths": set more than once`}},
		{"repeated parent key", `{"collector": {"enabled": false}, "collector": {}}`, []string{`key "collector": set more than once`}},
		{"object for list", `{"collector": {"paths": {"a": 1}}}`, []string{`"collector.paths"`, "[]string", "object"}},
		{"unknown key named like a nested one", `{"collector": {}, "paths": ["/"]}`, []string{`key "paths": unknown key`}},
		{"string for int", `{"generate_timeout_s": "5"}`, []string{`"generate_timeout_s"`, "int", "string"}},
		{"fraction for int", `{"max_concurrent_generates": 2.5}`, []string{`"max_concurrent_generates"`, "number 2.5"}},
		{"int overflow", `{"scan_budget_ms": 1e30}`, []string{`"scan_budget_ms"`}},
		{"string for bool", `{"collector": {"enabled": "yes"}}`, []string{`"collector.enabled"`, "bool"}},
		{"string for list", `{"collector": {"paths": "/srv"}}`, []string{`"collector.paths"`, "[]string"}},
		{"number in list", `{"collector": {"events": [1]}}`, []string{`"collector.events`, "string"}},
		{"array document", `[]`, []string{"JSON object", "array"}},
		{"string document", `"x"`, []string{"JSON object", "string"}},
		{"empty document", ``, []string{"the file is empty: write {} for the defaults"}},
		{"blank document", " \n\t\r\n", []string{"the file is empty"}},
		{"byte order mark alone", "\ufeff\n", []string{"the file is empty"}},
		{"byte order mark twice", "\ufeff\ufeff{}", []string{"invalid JSON"}},
		{"syntax error", `{"generate_timeout_s": 5,}`, []string{"invalid JSON"}},
		{"truncated", `{"generate_timeout_s": 5`, []string{"invalid JSON"}},
		{"second object", `{} {}`, []string{"trailing data"}},
		{"stray brace", `{"generate_timeout_s": 5}}`, []string{"trailing data"}},
		{"stray bracket", `{} ]`, []string{"trailing data"}},
		{"trailing word", `{} x`, []string{"trailing data"}},

		{"timeout zero", `{"generate_timeout_s": 0}`, []string{`"generate_timeout_s"`, "1..3600"}},
		{"timeout too long", `{"generate_timeout_s": 3601}`, []string{`"generate_timeout_s"`}},
		{"concurrency zero", `{"max_concurrent_generates": 0}`, []string{`"max_concurrent_generates"`, "1..64"}},
		{"concurrency too high", `{"max_concurrent_generates": 65}`, []string{`"max_concurrent_generates"`}},
		{"warning zero", `{"risk_warning_pct": 0}`, []string{`"risk_warning_pct"`}},
		{"warning 100", `{"risk_warning_pct": 100, "risk_critical_pct": 100}`, []string{`"risk_warning_pct"`}},
		{"critical at warning", `{"risk_warning_pct": 80, "risk_critical_pct": 80}`, []string{`"risk_critical_pct"`, "above risk_warning_pct"}},
		{"critical below warning", `{"risk_critical_pct": 70}`, []string{`"risk_critical_pct"`}},
		{"critical over 100", `{"risk_critical_pct": 100.5}`, []string{`"risk_critical_pct"`}},
		{"an object where a path belongs", `{"collector": {"paths": [{"a": 1, "a": 2}]}}`, []string{`key "collector.paths": expected string, got JSON object`}},
		{"scan budget small", `{"scan_budget_ms": 99}`, []string{`"scan_budget_ms"`, "100..3600000"}},
		{"scan budget huge", `{"scan_budget_ms": 9223372036854775807}`, []string{`"scan_budget_ms"`}},
		{"max rows zero", `{"max_rows": 0}`, []string{`"max_rows"`, "1..100000000"}},
		{"max rows huge", `{"max_rows": 100000001}`, []string{`"max_rows"`}},
		{"unknown mark", `{"collector": {"mark": "superblock"}}`, []string{`"collector.mark"`, "auto, filesystem, mount, inode"}},
		{"buffer zero", `{"collector": {"buffer_max": 0}}`, []string{`"collector.buffer_max"`, "1..1000000"}},
		{"buffer huge", `{"collector": {"buffer_max": 1000001}}`, []string{`"collector.buffer_max"`}},
		{"expiry zero", `{"collector": {"expiry_s": 0}}`, []string{`"collector.expiry_s"`}},
		{"expiry overflowing a Duration", `{"collector": {"expiry_s": 9300000000}}`, []string{`"collector.expiry_s"`}},
		{"no events", `{"collector": {"events": []}}`, []string{`"collector.events"`, "at least one"}},
		{"null events", `{"collector": {"events": null}}`, []string{`"collector.events"`}},
		{"unknown event", `{"collector": {"events": ["modify", "write"]}}`, []string{`"collector.events"`, `"write"`}},
		{"relative path", `{"collector": {"paths": ["/srv", "home"]}}`, []string{`"collector.paths"`, `"home"`, "absolute"}},
		{"empty path", `{"collector": {"paths": [""]}}`, []string{`"collector.paths"`, "absolute"}},
		{"NUL in path", `{"collector": {"paths": ["/srv\u0000x"]}}`, []string{`"collector.paths"`, "NUL"}},
		{"relative exclude", `{"collector": {"exclude_paths": ["./tmp"]}}`, []string{`"collector.exclude_paths"`, `"./tmp"`}},
		{"enabled without paths", `{"collector": {"enabled": true}}`, []string{`"collector.paths"`, "enabled"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.doc))
			if err == nil {
				t.Fatalf("%s accepted", c.doc)
			}
			for _, want := range c.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !reflect.DeepEqual(cfg, Default()) {
				t.Errorf("got %+v with the error, want defaults", cfg)
			}
		})
	}
}

// Of several unknown keys, the first in the file is named, whatever the
// order Go's maps would walk them in.
func TestParseNamesTheFirstUnknownKey(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"collector": {"foo": 2}, "foo": 1}`, `key "collector.foo": unknown key`},
		{`{"foo": 1, "collector": {"foo": 2}}`, `key "foo": unknown key`},
		{`{"bar": 1, "foo": 1, "baz": 1}`, `key "bar": unknown key`},
	} {
		for range 20 {
			if _, err := Parse([]byte(c.doc)); err == nil || err.Error() != c.want {
				t.Fatalf("%s: got error %v, want %s", c.doc, err, c.want)
			}
		}
	}
}

func TestParseAccepts(t *testing.T) {
	cases := []struct {
		name, doc string
		check     func(Config) bool
	}{
		{"empty object", `{}`, func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"null document", `null`, func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"surrounding whitespace", " \n{}\n\t ", func(c Config) bool { return reflect.DeepEqual(c, Default()) }},
		{"byte order mark", "\ufeff{\"max_rows\": 5}", func(c Config) bool { return c.MaxRows == 5 }},
		{"bounds", `{"generate_timeout_s": 3600, "max_concurrent_generates": 64, "scan_budget_ms": 100, "max_rows": 1}`,
			func(c Config) bool {
				return c.GenerateTimeoutS == 3600 && c.MaxConcurrentGenerates == 64 && c.ScanBudgetMS == 100 && c.MaxRows == 1
			}},
		{"a short timeout with the default scan budget", `{"generate_timeout_s": 5}`,
			func(c Config) bool { return c.GenerateTimeoutS == 5 && c.WalkBudget() == 2500*time.Millisecond }},
		{"a scan budget over the timeout", `{"scan_budget_ms": 120000}`,
			func(c Config) bool { return c.ScanBudgetMS == 120000 && c.WalkBudget() == 30*time.Second }},
		{"a scan budget within half the timeout", `{"scan_budget_ms": 2000}`,
			func(c Config) bool { return c.WalkBudget() == 2*time.Second }},
		{"critical 100", `{"risk_warning_pct": 99.9, "risk_critical_pct": 100}`,
			func(c Config) bool { return c.RiskWarningPct == 99.9 && c.RiskCriticalPct == 100 }},
		{"every mark", `{"collector": {"mark": "inode"}}`, func(c Config) bool { return c.Collector.Mark == "inode" }},
		{"every event", `{"collector": {"events": ["access", "modify", "open", "open_exec", "close_write", "close_nowrite",
			"create", "delete", "moved_from", "moved_to", "attrib", "delete_self", "move_self"]}}`,
			func(c Config) bool { return len(c.Collector.Events) == len(EventNames) }},
		{"disabled collector without paths", `{"collector": {"enabled": false, "exclude_paths": ["/proc"]}}`,
			func(c Config) bool { return !c.Collector.Enabled && c.Collector.ExcludePaths[0] == "/proc" }},
		{"collector keeps unset keys", `{"collector": {"buffer_max": 10}}`,
			func(c Config) bool {
				return c.Collector.BufferMax == 10 && c.Collector.ExpiryS == 3600 && c.Collector.Mark == "auto"
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.doc))
			if err != nil {
				t.Fatalf("%s rejected: %v", c.doc, err)
			}
			if !c.check(cfg) {
				t.Fatalf("%s parsed as %+v", c.doc, cfg)
			}
		})
	}
}
