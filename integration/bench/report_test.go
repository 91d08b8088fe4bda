package main

import (
	"fmt"
	"strings"
	"testing"
)

// A shell pipeline in a cell stays one cell.
func TestMarkdownTableEscapesPipes(t *testing.T) {
	var out strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&out, format+"\n", args...) }
	markdownTable(p, []string{"command", "CPU"}, [][]string{{"`find | xargs grep`", "1 ms"}})
	want := "| command | CPU |\n|---|---|\n| `find \\| xargs grep` | 1 ms |\n\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}
