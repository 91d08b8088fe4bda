package sqlengine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// recorder collects the context JSON of every generate, per table.
type recorder struct {
	mu       sync.Mutex
	contexts map[string][]string
}

func (r *recorder) hook(name, contextJSON string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.contexts[name] = append(r.contexts[name], contextJSON)
}

func (r *recorder) of(name string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.contexts[name])
}

// fixedTable returns rows regardless of the context, as a table that uses
// no constraints does; SQLite must still filter them.
func fixedTable(name string, cols []table.ColumnDefinition, values []tables.Values) *tables.Table {
	t := &tables.Table{Name: name, Columns: cols}
	rows := make([]tables.Row, len(values))
	for i, v := range values {
		rows[i] = t.Row(v)
	}
	t.Generate = func(context.Context, tables.QueryContext) ([]tables.Row, error) {
		return rows, nil
	}
	return t
}

var procsRows = []tables.Values{
	{"pid": "1", "name": "init", "secret": "s1", "ratio": "0.5", "uid": "0"},
	{"pid": "42", "name": "bash", "secret": "s2", "ratio": "1.5", "uid": "1000"},
	{"pid": "77", "name": "sleep", "secret": "", "ratio": "", "uid": "1000"},
	{"pid": "100", "name": "bash", "secret": "s3", "ratio": "2", "uid": "0"},
}

// procs has one column per kind of options osqueryd distinguishes.
func procs(rows ...tables.Values) *tables.Table {
	return fixedTable("procs", []table.ColumnDefinition{
		table.BigIntColumn("pid"), // no options: INDEX by default
		table.TextColumn("name", table.IndexColumn()),
		table.TextColumn("secret", table.HiddenColumn()), // HIDDEN only: never pushed
		table.DoubleColumn("ratio", table.AdditionalColumn()),
		table.IntegerColumn("uid", table.IndexColumn()),
	}, append(slices.Clone(procsRows), rows...))
}

func newEngine(t *testing.T, list ...*tables.Table) (*Engine, *recorder) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := New(tables.NewRunner(list, 10*time.Second, 4, log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	rec := &recorder{contexts: map[string][]string{}}
	e.ContextHook = rec.hook
	return e, rec
}

func query(t *testing.T, e *Engine, sql string) *Result {
	t.Helper()
	res, err := e.Query(context.Background(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return res
}

// procsContext is the context osqueryd sends for procs: every column sorted
// by name, with the given lists.
func procsContext(pid, name, ratio, uid, colsUsed string, bitset string) string {
	return `{"constraints":[` +
		`{"name":"name","list":[` + name + `],"affinity":"TEXT"},` +
		`{"name":"pid","list":[` + pid + `],"affinity":"BIGINT"},` +
		`{"name":"ratio","list":[` + ratio + `],"affinity":"DOUBLE"},` +
		`{"name":"secret","list":[],"affinity":"TEXT"},` +
		`{"name":"uid","list":[` + uid + `],"affinity":"INTEGER"}],` +
		`"colsUsed":[` + colsUsed + `],"colsUsedBitset":` + bitset + `}`
}

// The expected contexts follow osqueryd's xBestIndex/xFilter rules: every
// usable operator on an indexed column, one generate per IN value, no
// ranges on TEXT, nothing on HIDDEN-only columns, empty values dropped.
func TestContextMatchesOsqueryd(t *testing.T) {
	cases := []struct {
		sql  string
		want []string
	}{{
		sql:  "SELECT name FROM procs WHERE pid = 42",
		want: []string{procsContext(`{"op":2,"expr":"42"}`, "", "", "", `"pid","name"`, "3")},
	}, {
		sql: "SELECT name FROM procs WHERE pid IN (1, 77)",
		want: []string{
			procsContext(`{"op":2,"expr":"1"}`, "", "", "", `"pid","name"`, "3"),
			procsContext(`{"op":2,"expr":"77"}`, "", "", "", `"pid","name"`, "3"),
		},
	}, {
		sql:  "SELECT pid FROM procs WHERE name != 'bash'",
		want: []string{procsContext("", `{"op":68,"expr":"bash"}`, "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT pid FROM procs WHERE name LIKE 'ba%'",
		want: []string{procsContext("", `{"op":65,"expr":"ba%"}`, "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT pid FROM procs WHERE name GLOB 'b*'",
		want: []string{procsContext("", `{"op":66,"expr":"b*"}`, "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT name FROM procs WHERE pid > 10 AND pid <= 77",
		want: []string{procsContext(`{"op":4,"expr":"10"},{"op":8,"expr":"77"}`, "", "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT name FROM procs WHERE uid >= 1000 AND ratio < 2.5",
		want: []string{procsContext("", "", `{"op":16,"expr":"2.5"}`, `{"op":32,"expr":"1000"}`, `"name","ratio","uid"`, "26")},
	}, {
		// Ranges on TEXT stay with SQLite.
		sql:  "SELECT pid FROM procs WHERE name > 'b' AND name <= 'z'",
		want: []string{procsContext("", "", "", "", `"pid","name"`, "3")},
	}, {
		// HIDDEN-only columns are not indexed.
		sql:  "SELECT pid FROM procs WHERE secret = 's1'",
		want: []string{procsContext("", "", "", "", `"pid","secret"`, "5")},
	}, {
		// sqlite3_value_text of '' is empty, so osqueryd drops it.
		sql:  "SELECT pid FROM procs WHERE name = ''",
		want: []string{procsContext("", "", "", "", `"pid","name"`, "3")},
	}, {
		// The value is read as a C string.
		sql:  "SELECT pid FROM procs WHERE name = 'ba' || char(0) || 'sh'",
		want: []string{procsContext("", `{"op":2,"expr":"ba"}`, "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT pid FROM procs WHERE name = x'00ff'",
		want: []string{procsContext("", "", "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT pid FROM procs WHERE name IS 'bash'",
		want: []string{procsContext("", `{"op":72,"expr":"bash"}`, "", "", `"pid","name"`, "3")},
	}, {
		sql:  "SELECT pid FROM procs WHERE name IS NULL",
		want: []string{procsContext("", "", "", "", `"pid","name"`, "3")},
	}, {
		// No column read: colsUsed is empty.
		sql:  "SELECT COUNT(*) FROM procs",
		want: []string{procsContext("", "", "", "", "", "0")},
	}, {
		// SQLite ≥ 3.38 offers LIMIT as a constraint on column 0.
		sql:  "SELECT name FROM procs LIMIT 2",
		want: []string{procsContext(`{"op":73,"expr":"2"}`, "", "", "", `"name"`, "2")},
	}}
	for _, tc := range cases {
		e, rec := newEngine(t, procs())
		query(t, e, tc.sql)
		if got := rec.of("procs"); !slices.Equal(got, tc.want) {
			t.Errorf("%s\n got %s\nwant %s", tc.sql, strings.Join(got, "\n     "), strings.Join(tc.want, "\n     "))
		}
	}
}

func TestJoinPushesOuterValuesIntoInnerTable(t *testing.T) {
	users := fixedTable("users", []table.ColumnDefinition{
		table.BigIntColumn("uid"),
		table.TextColumn("username"),
	}, []tables.Values{{"uid": "0", "username": "root"}, {"uid": "1000", "username": "alice"}})
	e, rec := newEngine(t, procs(), users)

	res := query(t, e, "SELECT p.pid, u.username FROM users u JOIN procs p ON p.uid = u.uid WHERE u.username = 'alice' ORDER BY p.pid")
	want := [][]string{{"42", "alice"}, {"77", "alice"}}
	if !slices.EqualFunc(res.Rows, want, slices.Equal) {
		t.Errorf("rows %v, want %v", res.Rows, want)
	}
	wantUsers := []string{`{"constraints":[{"name":"uid","list":[],"affinity":"BIGINT"},` +
		`{"name":"username","list":[{"op":2,"expr":"alice"}],"affinity":"TEXT"}],"colsUsed":["uid","username"],"colsUsedBitset":3}`}
	if got := rec.of("users"); !slices.Equal(got, wantUsers) {
		t.Errorf("users contexts\n got %v\nwant %v", got, wantUsers)
	}
	wantProcs := []string{procsContext("", "", "", `{"op":2,"expr":"1000"}`, `"pid","uid"`, "17")}
	if got := rec.of("procs"); !slices.Equal(got, wantProcs) {
		t.Errorf("procs contexts\n got %v\nwant %v", got, wantProcs)
	}
}

// The generate gets the parsed context, through the same parser as osquery
// mode.
func TestGenerateReceivesParsedContext(t *testing.T) {
	var got tables.QueryContext
	tbl := procs()
	generate := tbl.Generate
	tbl.Generate = func(ctx context.Context, q tables.QueryContext) ([]tables.Row, error) {
		got = q
		return generate(ctx, q)
	}
	e, _ := newEngine(t, tbl)
	query(t, e, "SELECT name FROM procs WHERE pid IN (42) AND uid > 5")
	if vals, ok := got.IntEquals("pid"); !ok || !slices.Equal(vals, []int64{42}) {
		t.Errorf("IntEquals(pid) = %v, %v", vals, ok)
	}
	if r := got.IntRange("uid"); r.Min != 6 {
		t.Errorf("IntRange(uid) = %+v", r)
	}
	if !got.Uses("name") || got.Uses("secret") {
		t.Errorf("Uses: name %v secret %v", got.Uses("name"), got.Uses("secret"))
	}
}

// procsColumns names every column of procs; * leaves HIDDEN ones out.
const procsColumns = "pid, name, secret, ratio, uid"

// narrowing makes a table use the constraints as real tables do: it returns
// only the rows that the pushed pid and name constraints allow.
func narrowing(tbl *tables.Table) *tables.Table {
	generate := tbl.Generate
	tbl.Generate = func(ctx context.Context, q tables.QueryContext) ([]tables.Row, error) {
		rows, err := generate(ctx, q)
		pids, pidsNarrowed := q.IntEquals("pid")
		names, namesNarrowed := q.Equals("name")
		pidRange := q.IntRange("pid")
		return slices.DeleteFunc(slices.Clone(rows), func(r tables.Row) bool {
			pid, _ := strconv.ParseInt(r.Value(tbl.Index("pid")), 10, 64)
			return (pidsNarrowed && !slices.Contains(pids, pid)) ||
				(namesNarrowed && !slices.Contains(names, r.Value(tbl.Index("name")))) ||
				!pidRange.Contains(pid)
		}), err
	}
	return tbl
}

// Whatever the constraints, results equal SQLite filtering a plain copy of
// the unconstrained scan, also when the table narrows its rows by them.
func TestResultsEqualPlainScan(t *testing.T) {
	// A duplicate row: SQLite's OR scans must keep both copies.
	e, _ := newEngine(t, narrowing(procs(procsRows[1])))
	conds := []string{
		"pid = 42", "pid IN (1, 77, 5)", "pid != 42", "pid > 41", "pid >= 42 AND pid < 100",
		"name = 'bash'", "name LIKE 'B%'", "name GLOB 'b*'", "name > 'c'", "name IN ('init', 'sleep')",
		"ratio IS NULL", "ratio > 1", "uid = '1000'", "pid = '42'", "pid = 42.0", "secret = ''",
		"name = 'bash' OR pid = 1", "pid = 42 OR name = 'bash'", "pid = 1 OR pid = 77 OR name LIKE 'b%'", "pid BETWEEN 2 AND 80", "name IS NOT NULL", "pid = 42 LIMIT 1",
		"pid > 41.5", "pid < '50'", "pid IN (SELECT pid FROM procs WHERE name = 'bash')", "name = 'bash' COLLATE NOCASE",
		"name IN (SELECT 'BASH' UNION SELECT 'init')", "1 LIMIT 2 OFFSET 1",
	}
	for _, cond := range conds {
		got := query(t, e, "SELECT "+procsColumns+" FROM procs WHERE "+cond)
		want := query(t, e, "CREATE TEMP TABLE copy AS SELECT "+procsColumns+" FROM procs; SELECT * FROM copy WHERE "+cond)
		// Without ORDER BY the order is SQLite's choice (OR scans differ).
		slices.SortFunc(got.Rows, slices.Compare)
		slices.SortFunc(want.Rows, slices.Compare)
		if !slices.EqualFunc(got.Rows, want.Rows, slices.Equal) {
			t.Errorf("WHERE %s: got %v, plain scan gives %v", cond, got.Rows, want.Rows)
		}
		if len(want.Rows) == 0 {
			t.Errorf("WHERE %s selects nothing: weak test case", cond)
		}
	}
}

func TestAggregatesAndGrouping(t *testing.T) {
	e, _ := newEngine(t, procs())
	res := query(t, e, "SELECT uid, COUNT(*) AS n, SUM(ratio) AS total FROM procs GROUP BY uid ORDER BY uid")
	want := [][]string{{"0", "2", "2.5"}, {"1000", "2", "1.5"}}
	if !slices.Equal(res.Columns, []string{"uid", "n", "total"}) || !slices.EqualFunc(res.Rows, want, slices.Equal) {
		t.Errorf("got %v %v, want %v", res.Columns, res.Rows, want)
	}
}

// Generated strings become SQLite values as osqueryd converts them.
func TestValueConversionMatchesOsqueryd(t *testing.T) {
	values := fixedTable("vals", []table.ColumnDefinition{
		table.TextColumn("k"),
		table.IntegerColumn("i"),
		table.BigIntColumn("b"),
		table.DoubleColumn("d"),
		table.TextColumn("s"),
	}, []tables.Values{
		{"k": "plain", "i": "7", "b": "9000000000", "d": "1.25", "s": "x"},
		{"k": "empty", "i": "", "b": "", "d": "", "s": ""},
		{"k": "garbage", "i": "12abc", "b": "abc", "d": "1.5x", "s": "5"},
		{"k": "prefixes", "i": "0x1f", "b": "\t\n -010", "d": "\v\f\r2e3", "s": "0x1f"},
		{"k": "wide", "i": "4294967297", "b": "99999999999999999999", "d": "1e400", "s": "1e400"},
	})
	e, _ := newEngine(t, values)
	res := query(t, e, "SELECT k, typeof(i), i, typeof(b), b, typeof(d), d, typeof(s), s FROM vals")
	want := [][]string{
		{"plain", "integer", "7", "integer", "9000000000", "real", "1.25", "text", "x"},
		{"empty", "null", "", "null", "", "null", "", "text", ""},
		{"garbage", "integer", "12", "null", "", "null", "", "text", "5"},
		{"prefixes", "integer", "31", "integer", "-8", "real", "2000.0", "text", "0x1f"},
		{"wide", "integer", "1", "null", "", "real", "Inf", "text", "1e400"},
	}
	if !slices.EqualFunc(res.Rows, want, slices.Equal) {
		t.Errorf("got\n%v\nwant\n%v", res.Rows, want)
	}
}

func TestRealTextMatchesSQLite(t *testing.T) {
	e, _ := newEngine(t)
	for _, v := range []string{"0.1", "0.1+0.2", "1.0", "-1.5", "1e6", "1e15", "1e16", "1e17", "1e-4", "1e-5",
		"123456.789", "2.5e-5", "123456789012345.6", "9007199254740993.0", "1.7976931348623157e308", "-0.0", "1e300*1e300", "-1e300*1e300"} {
		res := query(t, e, "SELECT CAST("+v+" AS TEXT), "+v)
		if got, want := res.Rows[0][1], res.Rows[0][0]; got != want {
			t.Errorf("%s: rendered %q, SQLite renders %q", v, got, want)
		}
	}
}

func TestSQLErrorsCarrySQLiteMessage(t *testing.T) {
	e, _ := newEngine(t, procs())
	for sql, msg := range map[string]string{
		"SELEC 1":                `near "SELEC": syntax error`,
		"SELECT * FROM nowhere":  "no such table: nowhere",
		"SELECT nope FROM procs": "no such column: nope",
		"DELETE FROM procs":      "attempt to write a readonly database",
		"SELECT * FROM procs, (": "incomplete input",
	} {
		_, err := e.Query(context.Background(), sql)
		if err == nil || err.Error() != msg {
			t.Errorf("%s: error %v, want %q", sql, err, msg)
		}
	}
}

func TestGenerateErrorFailsQuery(t *testing.T) {
	broken := &tables.Table{
		Name:    "broken",
		Columns: []table.ColumnDefinition{table.TextColumn("x")},
		Generate: func(context.Context, tables.QueryContext) ([]tables.Row, error) {
			return nil, errors.New("cannot read /proc/broken")
		},
	}
	e, _ := newEngine(t, broken)
	_, err := e.Query(context.Background(), "SELECT * FROM broken")
	if err == nil || err.Error() != "cannot read /proc/broken" {
		t.Errorf("error %v, want the generate's", err)
	}
}

func TestRequiredColumnMustBeConstrained(t *testing.T) {
	files := fixedTable("files", []table.ColumnDefinition{
		table.TextColumn("path", table.RequiredColumn()),
		table.BigIntColumn("size"),
	}, []tables.Values{{"path": "/a", "size": "1"}})
	e, _ := newEngine(t, files)
	if _, err := e.Query(context.Background(), "SELECT * FROM files"); err == nil || !strings.Contains(err.Error(), "required column") {
		t.Errorf("unconstrained scan: error %v, want a required column error", err)
	}
	if res := query(t, e, "SELECT size FROM files WHERE path = '/a'"); len(res.Rows) != 1 {
		t.Errorf("constrained scan: rows %v", res.Rows)
	}
}

func TestDeclarationMatchesOsquery(t *testing.T) {
	for _, tc := range []struct {
		cols []table.ColumnDefinition
		want string
	}{{
		cols: []table.ColumnDefinition{table.BigIntColumn("a"), table.TextColumn("b", table.HiddenColumn())},
		want: "CREATE TABLE `t`(`a` BIGINT, `b` TEXT HIDDEN)",
	}, {
		cols: []table.ColumnDefinition{table.BigIntColumn("a", table.IndexColumn()), table.TextColumn("b", table.AdditionalColumn()), table.DoubleColumn("c")},
		want: "CREATE TABLE `t`(`a` BIGINT, `b` TEXT, `c` DOUBLE, PRIMARY KEY (`a`, `b`))",
	}, {
		cols: []table.ColumnDefinition{table.BigIntColumn("a", table.AdditionalColumn()), table.TextColumn("b")},
		want: "CREATE TABLE `t`(`a` BIGINT, `b` TEXT, PRIMARY KEY (`a`, `b`))",
	}} {
		if got := declaration(&tables.Table{Name: "t", Columns: tc.cols}); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func TestConcurrentQueries(t *testing.T) {
	e, _ := newEngine(t, procs())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.Query(context.Background(), "SELECT COUNT(*) FROM procs p1 JOIN procs p2 ON p1.uid = p2.uid")
			if err != nil || len(res.Rows) != 1 || res.Rows[0][0] != "8" {
				t.Errorf("rows %v err %v", res, err)
			}
		}()
	}
	wg.Wait()
}

// modernc cannot hand the whole IN list to one generate (sqlite3_vtab_in):
// an OPTIMIZED column gets one generate per value, like any other column.
func TestOptimizedColumnGetsOneGeneratePerValue(t *testing.T) {
	users := fixedTable("users", []table.ColumnDefinition{
		table.BigIntColumn("uid", table.IndexColumn(), table.OptimizedColumn()),
	}, []tables.Values{{"uid": "0"}, {"uid": "1000"}})
	e, rec := newEngine(t, users)
	res := query(t, e, "SELECT uid FROM users WHERE uid IN (0, 1000, 5)")
	if len(res.Rows) != 2 {
		t.Errorf("rows %v", res.Rows)
	}
	var want []string
	for _, uid := range []string{"0", "5", "1000"} { // SQLite walks the list sorted
		want = append(want, `{"constraints":[{"name":"uid","list":[{"op":2,"expr":"`+uid+`"}],"affinity":"BIGINT"}],"colsUsed":["uid"],"colsUsedBitset":1}`)
	}
	if got := rec.of("users"); !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

// BenchmarkQuery measures the engine's overhead on a 10000-row table: one
// generate, the context JSON, value conversion and SQLite's filter.
func BenchmarkQuery(b *testing.B) {
	rows := make([]tables.Values, 10000)
	for i := range rows {
		rows[i] = tables.Values{"pid": strconv.Itoa(i), "name": "p" + strconv.Itoa(i%100), "secret": "", "ratio": "0.5", "uid": strconv.Itoa(i % 7)}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := New(tables.NewRunner([]*tables.Table{procs(rows...)}, time.Minute, 4, log))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Query(context.Background(), "SELECT uid, COUNT(*), AVG(ratio) FROM procs WHERE name LIKE 'p1%' GROUP BY uid")
		if err != nil || len(res.Rows) != 7 {
			b.Fatal(res, err)
		}
	}
}
