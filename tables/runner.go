package tables

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"time"
)

// Runner runs generates the way both osquery mode and the embedded engine
// need them: bounded in time, capped in concurrency, and never panicking into
// the caller. osqueryd serves each connection in its own goroutine, so
// generates arrive concurrently.
type Runner struct {
	tables  map[string]*Table
	order   []*Table
	timeout time.Duration
	slots   chan struct{}
	log     *slog.Logger
}

// NewRunner wraps the given tables.
func NewRunner(list []*Table, timeout time.Duration, maxConcurrent int, log *slog.Logger) *Runner {
	r := &Runner{
		tables:  make(map[string]*Table, len(list)),
		order:   list,
		timeout: timeout,
		slots:   make(chan struct{}, max(1, maxConcurrent)),
		log:     log,
	}
	for _, t := range list {
		r.tables[t.Name] = t
	}
	return r
}

// Tables returns the wrapped tables in registration order.
func (r *Runner) Tables() []*Table { return r.order }

// Table returns the named table.
func (r *Runner) Table(name string) (*Table, bool) {
	t, ok := r.tables[name]
	return t, ok
}

// Generate runs the named table's generate under the timeout and the
// concurrency cap. A panic becomes an error. On timeout the generate keeps
// its slot until it returns, so the cap bounds real work, not waiting.
func (r *Runner) Generate(ctx context.Context, name string, q QueryContext) ([]Row, error) {
	t, ok := r.tables[name]
	if !ok {
		return nil, fmt.Errorf("unknown table %q", name)
	}
	return run(ctx, r, name, func(ctx context.Context) ([]Row, error) { return t.Generate(ctx, q) })
}

// Stream is Generate for a caller that writes each row as it is built. A
// table with a stream has it run as Generate runs a generate, and its rows
// built as the caller reads All, past the timeout and the concurrency cap,
// which bound the reads of /proc; a table without one has its generate's
// rows.
func (r *Runner) Stream(ctx context.Context, name string, q QueryContext) (Rows, error) {
	t, ok := r.tables[name]
	if !ok {
		return Rows{}, fmt.Errorf("unknown table %q", name)
	}
	if t.Stream != nil {
		return run(ctx, r, name, func(ctx context.Context) (Rows, error) { return t.Stream(ctx, q) })
	}
	rows, err := r.Generate(ctx, name, q)
	return Rows{len(rows), slices.Values(rows)}, err
}

// run calls f under the runner's timeout and concurrency cap, with a panic
// turned into an error.
func run[T any](ctx context.Context, r *Runner, name string, f func(context.Context) (T, error)) (T, error) {
	var zero T
	// The cause tells our own timeout apart from the caller giving up.
	ctx, cancel := context.WithTimeoutCause(ctx, r.timeout,
		fmt.Errorf("generate did not finish within %s: %w", r.timeout, context.DeadlineExceeded))
	defer cancel()

	begin := time.Now()
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return zero, fmt.Errorf("%s: waiting for a free generate slot: %w", name, context.Cause(ctx))
	}
	queued := time.Since(begin)

	type result struct {
		out T
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-r.slots }()
		defer func() {
			if p := recover(); p != nil {
				r.log.Error("generate panicked", "table", name, "panic", p, "stack", string(debug.Stack()))
				done <- result{err: fmt.Errorf("%s: internal error: %v", name, p)}
			}
		}()
		out, err := f(ctx)
		done <- result{out, err}
	}()

	select {
	case res := <-done:
		if res.err != nil {
			r.log.Debug("generate failed", "table", name, "err", res.err)
		}
		return res.out, res.err
	case <-ctx.Done():
		err := fmt.Errorf("%s: %w", name, context.Cause(ctx))
		if queued >= time.Millisecond {
			// A generate may time out for want of a slot that the
			// generates of other queries held (max_concurrent_generates).
			err = fmt.Errorf("%w (%s of it waiting for a free generate slot)", err, queued)
		}
		r.log.Warn("generate abandoned", "table", name, "err", err)
		return zero, err
	}
}
