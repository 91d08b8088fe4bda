// Command tabledocs rewrites the table reference in README.md from the table
// definitions: everything between the tables:begin and tables:end markers.
//
//	go run ./extension/tabledocs README.md
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

const (
	beginMarker = "<!-- tables:begin -->"
	endMarker   = "<!-- tables:end -->"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: tabledocs README.md")
		os.Exit(2)
	}
	if err := rewrite(os.Args[1]); err != nil {
		fmt.Fprintf(os.Stderr, "tabledocs: %v\n", err)
		os.Exit(1)
	}
}

func rewrite(path string) error {
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := replaceSection(string(readme), reference(definitions()))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(updated), 0o644)
}

// definitions returns every table as registered. Building them reads nothing
// and starts nothing with the default configuration.
func definitions() []*tables.Table {
	env := tables.NewEnv(config.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer env.Close()
	return tables.All(env)
}

// replaceSection puts section between the markers of doc.
func replaceSection(doc, section string) (string, error) {
	head, rest, ok := strings.Cut(doc, beginMarker)
	if !ok {
		return "", fmt.Errorf("no %s marker", beginMarker)
	}
	_, tail, ok := strings.Cut(rest, endMarker)
	if !ok {
		return "", fmt.Errorf("no %s marker after %s", endMarker, beginMarker)
	}
	return head + beginMarker + "\n" + section + endMarker + tail, nil
}

// reference renders each table's description and a column list with type,
// options and description.
func reference(list []*tables.Table) string {
	var b strings.Builder
	for _, t := range list {
		fmt.Fprintf(&b, "\n### `%s`\n\n%s\n\n", t.Name, cell(t.Description))
		b.WriteString("| column | type | options | description |\n|---|---|---|---|\n")
		for _, c := range t.Columns {
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", c.Name, c.Type, options(c), cell(c.Description))
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// options names a column's options as osquery's table specs do.
func options(c table.ColumnDefinition) string {
	var names []string
	for _, o := range []struct {
		set  bool
		name string
	}{{c.Index, "index"}, {c.Required, "required"}, {c.Additional, "additional"}, {c.Optimized, "optimized"}, {c.Hidden, "hidden"}} {
		if o.set {
			names = append(names, o.name)
		}
	}
	return strings.Join(names, ", ")
}

// cell keeps text inside one Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}
