package procfs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// DisplayPath renders a kernel path as text for a table cell. Valid UTF-8
// passes through unchanged (spaces, tabs and newlines included); each byte
// that is not part of valid UTF-8 is written as \xNN, so every table shows
// the same path the same way.
func DisplayPath(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && size <= 1 {
			fmt.Fprintf(&b, `\x%02x`, p[i])
			i++
			continue
		}
		b.WriteString(p[i : i+size])
		i += size
	}
	return b.String()
}
