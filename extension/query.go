package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/extension/sqlengine"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// runQuery runs one SQL query over the extension's tables without osqueryd
// and prints the rows like osqueryi: an aligned table, or with --json an
// array of objects with string values. Exit code 1 on any error.
func runQuery(args []string) int {
	flags := flag.NewFlagSet("query", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "print a JSON array of objects, like osqueryi --json")
	cfgPath := flags.String("config", config.DefaultPath, "configuration file (generate timeout, concurrency)")
	verbose := flags.Bool("verbose", false, "log each generate's context JSON and table diagnostics to stderr")
	watch := flags.Duration("watch", 0, "run the fanotify collector on collector.paths for this long (Ctrl-C ends it early), then the query")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), `usage: fanotify.ext query [--json] [--config PATH] [--verbose] [--watch DURATION] "SQL"`)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if flags.NArg() != 1 {
		flags.Usage()
		return 1
	}
	if err := runSQL(os.Stdout, flags.Arg(0), *cfgPath, *asJSON, *verbose, *watch); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// runSQL builds the tables as extension mode does and prints the result.
// With watch > 0 the collector records events for that long first.
func runSQL(out io.Writer, sql, cfgPath string, asJSON, verbose bool, watch time.Duration) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if watch > 0 {
		if len(cfg.Collector.Paths) == 0 {
			return fmt.Errorf("--watch needs collector.paths in %s", cfgPath)
		}
		cfg.Collector.Enabled = true
	}
	log := newLogger(verbose)
	env := tables.NewEnv(cfg, log)
	defer env.Close()
	waitOrInterrupt(watch)
	runner := tables.NewRunner(tables.All(env), time.Duration(cfg.GenerateTimeoutS)*time.Second, cfg.MaxConcurrentGenerates, log)
	engine, err := sqlengine.New(runner)
	if err != nil {
		return err
	}
	defer engine.Close()
	engine.ContextHook = func(table, contextJSON string) {
		log.Debug("generate", "table", table, "context", contextJSON)
	}

	res, err := engine.Query(context.Background(), sql)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, res)
	}
	printTable(out, res)
	return nil
}

// waitOrInterrupt waits for d, or until SIGINT or SIGTERM.
func waitOrInterrupt(d time.Duration) {
	if d <= 0 {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// printJSON writes rows as osqueryi --json does: one object per line, keys
// sorted, every value a string.
func printJSON(out io.Writer, res *sqlengine.Result) error {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i, row := range res.Rows {
		obj := make(map[string]string, len(row))
		for j, v := range row {
			obj[res.Columns[j]] = v
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		b.WriteString("  ")
		if err := enc.Encode(obj); err != nil {
			return err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		if i < len(res.Rows)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	if len(res.Rows) == 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := out.Write(b.Bytes())
	return err
}

// printTable writes osqueryi's pretty table: columns as wide as their widest
// value or name (in characters), left-aligned, framed by +---+ lines.
// Like osqueryi it prints nothing for an empty result.
func printTable(out io.Writer, res *sqlengine.Result) {
	if len(res.Rows) == 0 {
		return
	}
	widths := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		widths[i] = utf8.RuneCountInString(c)
		for _, row := range res.Rows {
			widths[i] = max(widths[i], utf8.RuneCountInString(row[i]))
		}
	}
	var b strings.Builder
	separator := func() {
		b.WriteString("+")
		for _, w := range widths {
			b.WriteString(strings.Repeat("-", w+2) + "+")
		}
		b.WriteString("\n")
	}
	line := func(cells []string) {
		b.WriteString("|")
		for i, c := range cells {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	separator()
	line(res.Columns)
	separator()
	for _, row := range res.Rows {
		line(row)
	}
	separator()
	io.WriteString(out, b.String())
}
