package sqlengine

import (
	"strings"

	"github.com/osquery/osquery-go/plugin/table"

	"github.com/osquery-fanotify/osquery-fanotify/tables"
)

// Column option bits as osqueryd reads them from an extension's column
// routes ("op").
const (
	optIndex      = 1
	optRequired   = 2
	optAdditional = 4
	optHidden     = 16
)

// effectiveOptions is how osqueryd treats a column of an extension table:
// with --extensions_default_index (on by default) a column declared without
// any option counts as INDEX. A HIDDEN-only column is not indexed.
func effectiveOptions(c table.ColumnDefinition) uint8 {
	if opts := c.Options(); opts != 0 {
		return opts
	}
	return optIndex
}

// declaration is the CREATE TABLE statement osqueryd declares for an
// extension table (columnDefinition in osquery's tables.cpp): declared types
// give SQLite the same column affinities, so comparisons coerce the same way.
// It uses the options as the extension sends them, before default indexing.
func declaration(t *tables.Table) string {
	var b strings.Builder
	b.WriteString("CREATE TABLE " + quoteIdent(t.Name) + "(")
	var keys []string
	indexed := false
	for i, c := range t.Columns {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quoteIdent(c.Name) + " " + string(c.Type))
		opts := c.Options()
		indexed = indexed || opts&optIndex != 0
		if opts&(optIndex|optAdditional) != 0 {
			keys = append(keys, quoteIdent(c.Name))
		}
		if opts&optHidden != 0 {
			b.WriteString(" HIDDEN")
		}
	}
	// Only ADDITIONAL columns: the whole row is the key.
	if !indexed && len(keys) > 0 {
		keys = keys[:0]
		for _, c := range t.Columns {
			keys = append(keys, quoteIdent(c.Name))
		}
	}
	if len(keys) > 0 {
		b.WriteString(", PRIMARY KEY (" + strings.Join(keys, ", ") + ")")
	}
	// Extension tables keep their rowid (no WITHOUT ROWID).
	b.WriteString(")")
	return b.String()
}

func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
