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

func BenchmarkPrintTable(b *testing.B) {
	res := benchResult()
	b.ReportAllocs()
	for b.Loop() {
		if err := printTable(io.Discard, res); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrintJSON(b *testing.B) {
	res := benchResult()
	b.ReportAllocs()
	for b.Loop() {
		if err := printJSON(io.Discard, res); err != nil {
			b.Fatal(err)
		}
	}
}
