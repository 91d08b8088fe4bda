package sqlengine

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/osquery/osquery-go/plugin/table"
)

// columnValue converts a generated string to the SQLite value osqueryd
// hands SQLite for a column of the given type (DynamicTableRow::get_column):
// TEXT and BLOB stay text, integer types go through C's strtol rules with
// base 0, DOUBLE through strtod, and a value that does not convert is NULL.
func columnValue(typ table.ColumnType, s string) any {
	switch typ {
	case table.ColumnTypeText, table.ColumnTypeBlob:
		return s
	case table.ColumnTypeInteger:
		n, ok := parseCInt(s)
		if !ok {
			return nil
		}
		// osqueryd passes INTEGER through sqlite3_result_int: only the low
		// 32 bits survive, exactly as a C long-to-int conversion.
		return int64(int32(n))
	case table.ColumnTypeBigInt, table.ColumnTypeUnsignedBigInt:
		n, ok := parseCInt(s)
		if !ok {
			return nil
		}
		return n
	case table.ColumnTypeDouble:
		f, ok := parseCDouble(s)
		if !ok || math.IsNaN(f) {
			return nil // SQLite stores a NaN result as NULL
		}
		return f
	}
	return nil // osqueryd sets no result for an unknown type: NULL
}

// parseCInt mimics std::stoll(s, &pos, 0) as osquery's tryTo uses it:
// leading white space is skipped, a sign and a 0x (hex) or 0 (octal) prefix
// are honoured, parsing stops at the first character that is not a digit
// (trailing garbage is ignored), and no digits or overflow is an error.
func parseCInt(s string) (int64, bool) {
	s = trimCSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	base := uint64(10)
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") && digitValue(s[2]) < 16:
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	var mag uint64
	digits := 0
	for ; digits < len(s); digits++ {
		d := digitValue(s[digits])
		if d >= base {
			break
		}
		if mag > (math.MaxUint64-d)/base {
			return 0, false // out_of_range
		}
		mag = mag*base + d
	}
	if digits == 0 {
		return 0, false // invalid_argument
	}
	if neg {
		if mag > 1<<63 {
			return 0, false
		}
		return int64(-mag), true // -(1<<63) wraps to MinInt64, as intended
	}
	if mag > math.MaxInt64 {
		return 0, false
	}
	return int64(mag), true
}

// digitValue returns the value of a hex digit, or 99 for anything else.
func digitValue(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'f':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return uint64(c-'A') + 10
	}
	return 99
}

// trimCSpace drops the leading white space that isspace() knows, byte by
// byte: strings.TrimLeft would build a set of the six bytes for every value
// of every row.
func trimCSpace(s string) string {
	for s != "" && (s[0] == ' ' || '\t' <= s[0] && s[0] <= '\r') {
		s = s[1:]
	}
	return s
}

// parseCDouble mimics osquery's strtod check: leading white space is
// allowed, the rest of the string must be one number, and an empty string is
// an error. strtod saturates out-of-range values to ±Inf or 0.
func parseCDouble(s string) (float64, bool) {
	s = trimCSpace(s)
	if s == "" || strings.ContainsRune(s, '_') {
		return 0, false // Go accepts digit separators, strtod does not
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

// sqliteText renders a value the way sqlite3_value_text does. ok is false
// for NULL.
func sqliteText(v any) (string, bool) {
	switch v := v.(type) {
	case nil:
		return "", false
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return realText(v), true
	case string:
		return v, true
	case []byte:
		return string(v), true
	case bool:
		if v {
			return "1", true
		}
		return "0", true
	}
	return "", false
}

// realText follows SQLite's "%!.15g" rendering of a REAL: 15 significant
// digits, or 17 when 15 do not survive a round trip; positional notation for
// decimal exponents -4..16; always a decimal point or an exponent. SQLite's
// own 17-digit decoding may differ from the exact one in the last digit.
func realText(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	sign := ""
	if f < 0 {
		sign = "-"
	}
	f = math.Abs(f) // SQLite renders -0.0 as 0.0
	prec := 15
	if g, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'e', prec-1, 64), 64); g != f {
		prec = 17
	}
	mant, exp, _ := strings.Cut(strconv.FormatFloat(f, 'e', prec-1, 64), "e")
	e, _ := strconv.Atoi(exp)
	digits := strings.TrimRight(strings.Replace(mant, ".", "", 1), "0")
	if digits == "" {
		digits, e = "0", 0
	}
	if e < -4 || e > 16 {
		frac := digits[1:]
		if frac == "" {
			frac = "0"
		}
		esign := "+"
		if e < 0 {
			esign, e = "-", -e
		}
		return fmt.Sprintf("%s%s.%se%s%02d", sign, digits[:1], frac, esign, e)
	}
	if e < 0 {
		return sign + "0." + strings.Repeat("0", -e-1) + digits
	}
	if len(digits) <= e+1 {
		return sign + digits + strings.Repeat("0", e+1-len(digits)) + ".0"
	}
	return sign + digits[:e+1] + "." + digits[e+1:]
}
