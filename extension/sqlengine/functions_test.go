package sqlengine

import (
	"context"
	"strings"
	"testing"
)

// The functions osqueryd adds give what osqueryd gives: log is natural and
// fails at its poles, ceil and floor return INTEGER, digests are lowercase
// hex of the value's text, inet_aton reads only dotted-quad IPv4.
func TestOsqueryFunctions(t *testing.T) {
	e, _ := newEngine(t, procs())
	for expr, want := range map[string]string{
		"typeof(log(1)), log(1), round(log(exp(2)), 12), log(NULL) IS NULL": "real|0.0|2.0|1",
		"typeof(ceil(1.2)), ceil(1.2), ceil(-1.2), ceil(7)":                 "integer|2|-1|7",
		"typeof(floor(1.8)), floor(1.8), floor(-1.2), floor(NULL) IS NULL":  "integer|1|-2|1",
		"md5(''), md5(NULL) IS NULL":                                        "d41d8cd98f00b204e9800998ecf8427e|1",
		"md5('abc'), md5(X'61626300ff'), md5(123) = md5('123')":             "900150983cd24fb0d6963f7d28e17f72|900150983cd24fb0d6963f7d28e17f72|1",
		"sha1('abc')":   "a9993e364706816aba3e25717850c26c9cd0d89d",
		"sha256('abc')": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"inet_aton('192.168.0.1'), inet_aton('255.255.255.255'), inet_aton('0.0.0.0')":                                                                                      "3232235521|4294967295|0",
		"quote(inet_aton('10.0.0.256')), quote(inet_aton('10.0.0.01')), quote(inet_aton('10.0.0')), quote(inet_aton('::1')), quote(inet_aton(1.5)), quote(inet_aton(NULL))": "NULL|NULL|NULL|NULL|NULL|NULL",
	} {
		res := query(t, e, "SELECT "+expr)
		if got := strings.Join(res.Rows[0], "|"); got != want {
			t.Errorf("SELECT %s: got %s, osqueryd gives %s", expr, got, want)
		}
	}
}

// Where osqueryd's result depends on how SQLite converts a value, which
// this engine does not copy, the function fails rather than answer
// differently; log fails where the C library reports a pole or domain error.
func TestOsqueryFunctionsRefuse(t *testing.T) {
	e, _ := newEngine(t, procs())
	for expr, want := range map[string]string{
		"log(0)":      "Numerical result out of range",
		"log(-1)":     "Numerical argument out of domain",
		"ceil('1.5')": "ceil of text",
		"md5(1.5)":    "md5 of a real",
	} {
		_, err := e.Query(context.Background(), "SELECT "+expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("SELECT %s: error %v, want %q", expr, err, want)
		}
	}
}
