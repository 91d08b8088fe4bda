package main

import (
	"io"
	"strconv"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/extension/sqlengine"
)

// benchResult is a result the size of SELECT * of inotify_watches on a busy
// host: 50,000 rows of 15 columns.
func benchResult() *sqlengine.Result {
	res := &sqlengine.Result{}
	for i := range 15 {
		res.Columns = append(res.Columns, "column_"+strconv.Itoa(i))
	}
	for i := range 50000 {
		row := make([]string, len(res.Columns))
		for j := range row {
			row[j] = strconv.Itoa(i * j)
		}
		res.Rows = append(res.Rows, row)
	}
	return res
}

// BenchmarkPrint measures printing that result as a table and as JSON.
func BenchmarkPrint(b *testing.B) {
	res := benchResult()
	for _, p := range []struct {
		name  string
		print func(io.Writer, *sqlengine.Result) error
	}{{"table", printTable}, {"json", printJSON}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := p.print(io.Discard, res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
