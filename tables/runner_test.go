package tables

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

var quietLog = slog.New(slog.DiscardHandler)

func tableOf(name string, gen GenerateFunc) *Table {
	return &Table{Name: name, Columns: nil, Generate: gen}
}

func constRows(values ...string) GenerateFunc {
	return func(context.Context, QueryContext) ([]Row, error) {
		rows := make([]Row, len(values))
		for i, v := range values {
			rows[i] = RowOf(v)
		}
		return rows, nil
	}
}

func TestRunnerPassesContextAndRows(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	echo := tableOf("echo", func(_ context.Context, q QueryContext) ([]Row, error) {
		vals, _ := q.Equals("v")
		return []Row{RowOf(strings.Join(vals, ","))}, nil
	})
	r := NewRunner([]*Table{echo}, time.Minute, 1, quietLog)
	q := NewQueryContext(map[string][]Constraint{"v": {{OpEquals, "a"}, {OpEquals, "b"}}}, nil)
	rows, err := r.Generate(context.Background(), "echo", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Value(0) != "a,b" {
		t.Fatalf("rows %v, want one row v=a,b", rows)
	}
}

func TestRunnerPassesGenerateErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	errBroken := errors.New("broken")
	r := NewRunner([]*Table{tableOf("bad", func(context.Context, QueryContext) ([]Row, error) {
		return nil, errBroken
	})}, time.Minute, 1, quietLog)
	if _, err := r.Generate(context.Background(), "bad", QueryContext{}); !errors.Is(err, errBroken) {
		t.Fatalf("got %v, want the generate's own error", err)
	}
}

func TestRunnerUnknownTable(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	r := NewRunner([]*Table{tableOf("known", constRows("x"))}, time.Minute, 1, quietLog)
	_, err := r.Generate(context.Background(), "missing_table", QueryContext{})
	if err == nil || !strings.Contains(err.Error(), `"missing_table"`) {
		t.Fatalf("got %v, want an error naming the table", err)
	}
}

func TestRunnerTablesInOrder(t *testing.T) {
	a, b := tableOf("b_first", constRows()), tableOf("a_second", constRows())
	r := NewRunner([]*Table{a, b}, time.Minute, 1, quietLog)
	if got := r.Tables(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Tables() = %v, want registration order", got)
	}
	if got, ok := r.Table("a_second"); !ok || got != b {
		t.Fatalf("Table(a_second) = %v, %v", got, ok)
	}
	if _, ok := r.Table("c"); ok {
		t.Fatal("Table(c) found a table that was never registered")
	}
}

// The timeout is virtual time inside synctest: nothing sleeps for real.
func TestRunnerTimeoutCancelsGenerate(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		var sawCancel atomic.Bool
		slow := tableOf("slow_table", func(ctx context.Context, _ QueryContext) ([]Row, error) {
			<-ctx.Done()
			sawCancel.Store(true)
			return nil, ctx.Err()
		})
		r := NewRunner([]*Table{slow}, 30*time.Second, 1, quietLog)
		start := time.Now()
		_, err := r.Generate(context.Background(), "slow_table", QueryContext{})
		if err == nil {
			t.Fatal("generate past its timeout returned no error")
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "slow_table") ||
			!strings.Contains(err.Error(), "30s") {
			t.Errorf("error %q: want one naming the table and the 30s timeout, wrapping DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != 30*time.Second {
			t.Errorf("returned after %s, want exactly the 30s timeout", waited)
		}
		synctest.Wait()
		if !sawCancel.Load() {
			t.Error("the generate's context was not cancelled")
		}
	})
}

func TestRunnerCallerCancelIsNotATimeout(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		wait := tableOf("waiting", func(ctx context.Context, _ QueryContext) ([]Row, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		r := NewRunner([]*Table{wait}, time.Minute, 1, quietLog)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		_, err := r.Generate(ctx, "waiting", QueryContext{})
		if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "did not finish") {
			t.Fatalf("got %v, want the caller's cancellation, not a timeout", err)
		}
	})
}

// A generate that ignores its context keeps its slot after the caller gets
// the timeout, so the cap bounds the work actually running.
func TestRunnerTimedOutGenerateKeepsItsSlot(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		releaseStuck := sync.OnceFunc(func() { close(release) })
		defer releaseStuck() // a failed check must not leave the bubble deadlocked
		var quickRuns atomic.Int32
		stuck := tableOf("stuck", func(context.Context, QueryContext) ([]Row, error) {
			<-release
			return nil, nil
		})
		quick := tableOf("quick", func(context.Context, QueryContext) ([]Row, error) {
			quickRuns.Add(1)
			return []Row{RowOf("1")}, nil
		})
		r := NewRunner([]*Table{stuck, quick}, 10*time.Second, 1, quietLog)

		if _, err := r.Generate(context.Background(), "stuck", QueryContext{}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("stuck generate: got %v, want a timeout", err)
		}
		_, err := r.Generate(context.Background(), "quick", QueryContext{})
		if err == nil || !strings.Contains(err.Error(), "waiting for a free generate slot") {
			t.Fatalf("second generate while the stuck one runs: got %v, want a wait for the slot", err)
		}
		if quickRuns.Load() != 0 {
			t.Fatal("a generate ran beyond the cap of 1")
		}

		releaseStuck()
		synctest.Wait() // the stuck generate returns and frees its slot
		rows, err := r.Generate(context.Background(), "quick", QueryContext{})
		if err != nil || len(rows) != 1 {
			t.Fatalf("after the stuck generate finished: rows %v, err %v", rows, err)
		}
	})
}

// A generate that timed out after waiting for a slot says how long it
// waited: the time was spent by other queries' generates.
func TestRunnerTimeoutCountsTheWaitForASlot(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		busy := tableOf("busy", func(context.Context, QueryContext) ([]Row, error) {
			time.Sleep(7 * time.Second)
			return nil, nil
		})
		slow := tableOf("slow", func(ctx context.Context, _ QueryContext) ([]Row, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		r := NewRunner([]*Table{busy, slow}, 10*time.Second, 1, quietLog)
		go r.Generate(context.Background(), "busy", QueryContext{})
		synctest.Wait() // busy holds the only slot
		_, err := r.Generate(context.Background(), "slow", QueryContext{})
		if want := "(7s of it waiting for a free generate slot)"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("got %v, want a timeout saying %q", err, want)
		}
	})
}

func TestRunnerCapsConcurrency(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		const limit, callers = 3, 12
		var running, peak atomic.Int32
		release := make(chan struct{})
		work := tableOf("work", func(context.Context, QueryContext) ([]Row, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			<-release
			running.Add(-1)
			return []Row{RowOf("done")}, nil
		})
		r := NewRunner([]*Table{work}, time.Hour, limit, quietLog)

		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for range callers {
			wg.Go(func() {
				_, err := r.Generate(context.Background(), "work", QueryContext{})
				errs <- err
			})
		}
		synctest.Wait() // every caller either runs its generate or waits for a slot
		if n := running.Load(); n != limit {
			t.Errorf("%d generates running with every caller blocked, want the cap %d", n, limit)
		}
		for range callers {
			release <- struct{}{} // lets one generate finish, and a waiting one start
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if p := peak.Load(); p != limit {
			t.Fatalf("peak concurrency %d, want %d", p, limit)
		}
	})
}

func TestRunnerRecoversPanic(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	boom := tableOf("boom_table", func(context.Context, QueryContext) ([]Row, error) {
		panic("kaput")
	})
	// A realistic slip: reading the first = value without checking there is one.
	firstValue := tableOf("first_value", func(_ context.Context, q QueryContext) ([]Row, error) {
		vals, _ := q.Equals("v")
		return []Row{RowOf(vals[0])}, nil
	})
	// One slot: a panic that leaked its slot would block every later call.
	r := NewRunner([]*Table{boom, firstValue, tableOf("fine", constRows("ok"))}, time.Minute, 1, log)
	for range 3 {
		_, err := r.Generate(context.Background(), "boom_table", QueryContext{})
		if err == nil || !strings.Contains(err.Error(), "boom_table") || !strings.Contains(err.Error(), "kaput") {
			t.Fatalf("got %v, want an error naming the table and the panic", err)
		}
	}
	if _, err := r.Generate(context.Background(), "first_value", QueryContext{}); err == nil ||
		!strings.Contains(err.Error(), "first_value") || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("runtime panic: got %v", err)
	}
	rows, err := r.Generate(context.Background(), "fine", QueryContext{})
	if err != nil || len(rows) != 1 || rows[0].Value(0) != "ok" {
		t.Fatalf("after panics: rows %v, err %v", rows, err)
	}
	for _, want := range []string{"generate panicked", "table=boom_table", "kaput", "stack="} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
}

// A query that reads no column (COUNT(*)) gets one zero Row per value:
// no values to allocate, on a host of 100,000 mounts 16 empty strings each.
func TestRowsOfReadingNoColumn(t *testing.T) {
	type thing struct{ n int }
	cols := []column[*thing]{{text("n", "a number"), func(v *thing) string { return strconv.Itoa(v.n) }}}
	things := []thing{{1}, {2}, {3}}
	for _, row := range rowsOf(cols, nil, things) {
		if row != (Row{}) {
			t.Fatalf("row %+v of a query reading no column, want the zero Row", row)
		}
	}
	if rows := rowsOf(cols, []int{0}, things); len(rows) != 3 || rows[2].Value(0) != "3" {
		t.Fatalf("rows %+v of a query reading n, want 1, 2, 3", rows)
	}
}

// Rows keep the values of the columns their query reads, each at its
// column, and read empty at the others and past the last.
func TestRowsOfReadingSomeColumns(t *testing.T) {
	type thing struct{ n int }
	cols := []column[*thing]{
		{text("n", "a number"), func(v *thing) string { return strconv.Itoa(v.n) }},
		{text("square", "its square"), func(v *thing) string { return strconv.Itoa(v.n * v.n) }},
		{text("cube", "its cube"), func(v *thing) string { return strconv.Itoa(v.n * v.n * v.n) }},
	}
	rows := rowsOf(cols, []int{0, 2}, []thing{{1}, {2}, {3}})
	for j, row := range rows {
		n := j + 1
		got := []string{row.Value(0), row.Value(1), row.Value(2), row.Value(3)}
		if want := []string{strconv.Itoa(n), "", strconv.Itoa(n * n * n), ""}; !slices.Equal(got, want) {
			t.Errorf("row %d: %q, want %q", j, got, want)
		}
	}
}

// A stream of rows yields what rowsOf builds, building a chunk of rows at a
// time in the same room: streaming 100,000 rows allocates about one
// chunk's worth, where building them all allocates for every row.
func TestStreamOfBuildsAChunkAtATime(t *testing.T) {
	type thing struct{ n int }
	cols := []column[*thing]{
		{text("n", "a number"), func(v *thing) string { return strconv.Itoa(v.n) }},
		{text("kind", "always the same"), func(*thing) string { return "thing" }},
	}
	things := make([]thing, 100000)
	for i := range things {
		things[i].n = i
	}
	built := rowsOf(cols, []int{0, 1}, things[:2*streamChunk+1])
	streamed := streamOf(cols, []int{0, 1}, things[:2*streamChunk+1])
	j := 0
	for row := range streamed.All {
		if row.Value(0) != built[j].Value(0) || row.Value(1) != "thing" {
			t.Fatalf("row %d: %q %q, want %q", j, row.Value(0), row.Value(1), built[j].Value(0))
		}
		j++
	}
	if j != streamed.Len || j != len(built) {
		t.Fatalf("%d rows streamed, Len %d, want %d", j, streamed.Len, len(built))
	}

	allocated := func(f func()) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	kind := []int{1} // a constant value: only the rows' room is allocated
	all := allocated(func() { rowsOf(cols, kind, things) })
	stream := allocated(func() {
		for range streamOf(cols, kind, things).All {
		}
	})
	if stream*20 > all {
		t.Errorf("streaming 100,000 rows allocated %d bytes, building them %d: want a chunk's room only", stream, all)
	}
}
