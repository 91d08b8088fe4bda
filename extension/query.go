package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/osquery-fanotify/osquery-fanotify/extension/sqlengine"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// runQuery runs one SQL query over the extension's tables without osqueryd
// and prints the rows like osqueryi: an aligned table, or with --json an
// array of objects with string values. Exit code 1 on any error.
func runQuery(args []string) int {
	flags := flag.NewFlagSet("query", flag.ContinueOnError)
	asJSON := flags.Bool("json", false, "print a JSON array of objects, like osqueryi --json")
	cfgFlag := newConfigFlag()
	flags.Var(&cfgFlag, "config", "read the configuration from `PATH` (every key; collector.* only with --watch); a PATH given must exist, the default may be missing")
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
	if err := runSQL(os.Stdout, flags.Arg(0), cfgFlag, *asJSON, *verbose, *watch); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

// runSQL builds the tables as extension mode does and prints the result.
// With watch > 0 the collector records events for that long first; without,
// it does not run, whatever the configuration says.
func runSQL(out io.Writer, sql string, cfgFlag configFlag, asJSON, verbose bool, watch time.Duration) error {
	cfg, err := cfgFlag.load()
	if err != nil {
		return err
	}
	if watch > 0 && len(cfg.Collector.Paths) == 0 {
		return fmt.Errorf("--watch needs collector.paths in %s", cfgFlag.path)
	}
	// Only --watch runs the collector: a group and marks of the query's own
	// would add to the usage it reports, and could take the last group of
	// max_user_groups.
	cfg.Collector.Enabled = watch > 0
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
	return printTable(out, res)
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
// sorted, every value a string. A name the result repeats is printed once,
// with its last column's value, as an object keyed by name holds it.
func printJSON(out io.Writer, res *sqlengine.Result) error {
	keys := sortedColumns(res.Columns)
	names := make([][]byte, len(keys)) // each key with its colon, encoded once
	for k, col := range keys {
		names[k] = append(appendJSONString(nil, res.Columns[col]), ':')
	}
	w := bufio.NewWriterSize(out, 64<<10)
	w.WriteString("[\n")
	var line []byte
	for i, row := range res.Rows {
		line = append(line[:0], "  {"...)
		for k, col := range keys {
			if k > 0 {
				line = append(line, ',')
			}
			line = append(line, names[k]...)
			line = appendJSONString(line, row[col])
		}
		line = append(line, '}')
		if i < len(res.Rows)-1 {
			line = append(line, ',')
		}
		w.Write(append(line, '\n'))
	}
	if len(res.Rows) == 0 {
		w.WriteString("\n")
	}
	w.WriteString("]\n")
	return w.Flush()
}

// sortedColumns lists the positions of columns by name, each name once at
// its last position.
func sortedColumns(columns []string) []int {
	last := make(map[string]int, len(columns))
	for i, c := range columns {
		last[c] = i
	}
	keys := slices.Collect(maps.Values(last))
	slices.SortFunc(keys, func(a, b int) int { return strings.Compare(columns[a], columns[b]) })
	return keys
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// does without HTML escaping. Most values are plain ASCII and are copied.
func appendJSONString(b []byte, s string) []byte {
	plain := true
	for i := 0; i < len(s) && plain; i++ {
		plain = s[i] >= 0x20 && s[i] < utf8.RuneSelf && s[i] != '"' && s[i] != '\\'
	}
	if plain {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// printTable writes osqueryi's pretty table: columns as wide as their widest
// value or name (in characters), left-aligned, framed by +---+ lines.
// Like osqueryi it prints nothing for an empty result.
func printTable(out io.Writer, res *sqlengine.Result) error {
	if len(res.Rows) == 0 {
		return nil
	}
	widths := make([]int, len(res.Columns))
	for i, c := range res.Columns {
		widths[i] = utf8.RuneCountInString(c)
	}
	for _, row := range res.Rows {
		for i, v := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(v))
		}
	}
	separator := []byte{'+'}
	for _, width := range widths {
		separator = append(separator, strings.Repeat("-", width+2)...)
		separator = append(separator, '+')
	}
	separator = append(separator, '\n')
	padding := bytes.Repeat([]byte{' '}, slices.Max(widths))
	var line []byte
	appendLine := func(cells []string) []byte {
		line = append(line[:0], '|')
		for i, c := range cells {
			line = append(line, ' ')
			line = append(line, c...)
			line = append(line, padding[:widths[i]-utf8.RuneCountInString(c)]...)
			line = append(line, " |"...)
		}
		return append(line, '\n')
	}
	w := bufio.NewWriterSize(out, 64<<10)
	w.Write(separator)
	w.Write(appendLine(res.Columns))
	w.Write(separator)
	for _, row := range res.Rows {
		w.Write(appendLine(row))
	}
	w.Write(separator)
	return w.Flush()
}
