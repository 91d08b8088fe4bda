package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/extension/sqlengine"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/fanotifytest"
)

func TestPrintTableLikeOsqueryi(t *testing.T) {
	var out bytes.Buffer
	printTable(&out, &sqlengine.Result{
		Columns: []string{"mnt_ns", "path"},
		Rows:    [][]string{{"4026531841", "/"}, {"7", "/tmp/ünïcode"}, {"", "/x"}},
	})
	want := "" +
		"+------------+--------------+\n" +
		"| mnt_ns     | path         |\n" +
		"+------------+--------------+\n" +
		"| 4026531841 | /            |\n" +
		"| 7          | /tmp/ünïcode |\n" +
		"|            | /x           |\n" +
		"+------------+--------------+\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestPrintTableEmptyPrintsNothing(t *testing.T) {
	var out bytes.Buffer
	printTable(&out, &sqlengine.Result{Columns: []string{"a"}, Rows: [][]string{}})
	if out.Len() != 0 {
		t.Errorf("got %q, want nothing", out.String())
	}
}

func TestPrintJSONLikeOsqueryi(t *testing.T) {
	var out bytes.Buffer
	err := printJSON(&out, &sqlengine.Result{
		Columns: []string{"z", "a"},
		Rows:    [][]string{{"1", "x<y>&\"q\""}, {"", "2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[\n" +
		`  {"a":"x<y>&\"q\"","z":"1"},` + "\n" +
		`  {"a":"2","z":""}` + "\n" +
		"]\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	var rows []map[string]string
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 2 {
		t.Errorf("not a JSON array of 2 objects: %v %v", rows, err)
	}
}

func TestPrintJSONEmpty(t *testing.T) {
	var out bytes.Buffer
	if err := printJSON(&out, &sqlengine.Result{Columns: []string{"a"}, Rows: [][]string{}}); err != nil {
		t.Fatal(err)
	}
	var rows []map[string]string
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || rows == nil || len(rows) != 0 {
		t.Errorf("%q: want an empty JSON array (%v)", out.String(), err)
	}
}

// Values are escaped exactly as encoding/json escapes them without HTML
// escaping; plain ASCII takes a path of its own.
func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain /path 123", `q"uote`, `back\slash`, "tab\tnew\nline\r", "\x00\x1f\x7f",
		"ünïcode", "bad \xff utf8", "sep\u2028\u2029", "<a&b>"} {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := string(appendJSONString(nil, s)); got+"\n" != want.String() {
			t.Errorf("%q: got %s, want %s", s, got, want.String())
		}
	}
}

// A name the query repeats is one key, holding its last column's value.
func TestPrintJSONRepeatedColumn(t *testing.T) {
	var out bytes.Buffer
	if err := printJSON(&out, &sqlengine.Result{Columns: []string{"b", "a", "b"}, Rows: [][]string{{"1", "2", "3"}}}); err != nil {
		t.Fatal(err)
	}
	if want := "[\n  {\"a\":\"2\",\"b\":\"3\"}\n]\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestSubcommandsCollectLessOftenUnlessGOGCIsSet(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "")
	collectLessOften()
	if got := debug.SetGCPercent(100); got != 400 {
		t.Errorf("GC percent %d, want 400", got)
	}
	t.Setenv("GOGC", "100")
	collectLessOften()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GC percent %d with GOGC=100 set, want 100", got)
	}
}

// A file being tried out with query shows its mistake rather than running
// on the defaults, as report does (exit 3).
func TestQueryRefusesABadConfig(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"risk_warning_pct": 75, "bogus": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := runSQL(&out, "SELECT 1", namedConfig(bad), false, false, 0)
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) || out.Len() != 0 {
		t.Errorf("runSQL with %s: error %v, output %q; want the key named and nothing printed", bad, err, out.String())
	}
}

// A query naming a collation gets the rows SQLite keeps, though the
// constraint reaching the table does not say which collation: the tables
// narrowing on text (name, instance_id) keep every row that may match.
func TestNarrowedTextColumnsKeepCollatedMatches(t *testing.T) {
	in := fanotifytest.Inotify(t)
	defer fanotifytest.Close(in)
	instance := fmt.Sprintf("%d:%d", os.Getpid(), in)
	defaults := writeConfig(t, map[string]any{})
	for _, q := range []struct{ collated, plain string }{
		{"SELECT COUNT(*) FROM fanotify_limits WHERE name = 'MAX_User_Marks' COLLATE NOCASE",
			"SELECT COUNT(*) FROM fanotify_limits WHERE lower(name) = 'max_user_marks'"},
		{"SELECT COUNT(*) FROM inotify_instances WHERE instance_id = '" + instance + "  ' COLLATE RTRIM",
			"SELECT COUNT(*) FROM inotify_instances WHERE instance_id || '' = '" + instance + "'"},
	} {
		var collated, plain bytes.Buffer
		if err := runSQL(&collated, q.collated, namedConfig(defaults), true, false, 0); err != nil {
			t.Fatal(err)
		}
		if err := runSQL(&plain, q.plain, namedConfig(defaults), true, false, 0); err != nil {
			t.Fatal(err)
		}
		if collated.String() != plain.String() || strings.Contains(plain.String(), `"0"`) {
			t.Errorf("%s: %s; %s: %s", q.collated, collated.String(), q.plain, plain.String())
		}
	}
}
