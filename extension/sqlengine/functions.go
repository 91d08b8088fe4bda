package sqlengine

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"net/netip"
	"strconv"
	"strings"

	sqlite "modernc.org/sqlite"
)

// scalar is a SQL function of one argument.
type scalar func(arg driver.Value) (driver.Value, error)

// osqueryFunctions are the functions osqueryd adds to SQLite
// (osquery/sql/sqlite_math.cpp, sqlite_hashing.cpp, sqlite_string.cpp) that
// give here the results they give in osqueryd. log, ceil and floor replace
// SQLite's own, as in osqueryd. The README lists those left out.
var osqueryFunctions = map[string]scalar{
	"log":       numeric("log", naturalLog),
	"ceil":      numeric("ceil", integral(math.Ceil)),
	"floor":     numeric("floor", integral(math.Floor)),
	"md5":       hexDigest("md5", md5.New),
	"sha1":      hexDigest("sha1", sha1.New),
	"sha256":    hexDigest("sha256", sha256.New),
	"inet_aton": inetAton,
}

func registerFunctions(d *sqlite.Driver) error {
	for name, f := range osqueryFunctions {
		err := d.RegisterDeterministicScalarFunction(name, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
			return f(args[0])
		})
		if err != nil {
			return fmt.Errorf("function %s: %w", name, err)
		}
	}
	return nil
}

// numeric applies f to a number; NULL gives NULL. osqueryd reads text as
// SQLite converts it to a number, which this engine does not copy: it
// refuses text rather than answer differently.
func numeric(name string, f func(arg driver.Value) (driver.Value, error)) scalar {
	return func(arg driver.Value) (driver.Value, error) {
		switch arg.(type) {
		case nil:
			return nil, nil
		case int64, float64:
			return f(arg)
		}
		return nil, fmt.Errorf("%s of text: CAST it to a number", name)
	}
}

func float(arg driver.Value) float64 {
	if i, ok := arg.(int64); ok {
		return float64(i)
	}
	return arg.(float64)
}

// naturalLog is osqueryd's log: base e, where SQLite's is base 10, and the
// C library's pole and domain errors fail the query with strerror's text.
func naturalLog(arg driver.Value) (driver.Value, error) {
	x := float(arg)
	switch {
	case x == 0:
		//lint:ignore ST1005 strerror(ERANGE), as osqueryd reports it
		return nil, errors.New("Numerical result out of range")
	case x < 0:
		//lint:ignore ST1005 strerror(EDOM), as osqueryd reports it
		return nil, errors.New("Numerical argument out of domain")
	}
	return math.Log(x), nil
}

// integral is osqueryd's ceil and floor: an integer stays as it is, and a
// real is rounded and converted to INTEGER, where SQLite's return REAL.
func integral(round func(float64) float64) func(driver.Value) (driver.Value, error) {
	return func(arg driver.Value) (driver.Value, error) {
		if i, ok := arg.(int64); ok {
			return i, nil
		}
		return int64(round(arg.(float64))), nil
	}
}

// cString is the text osqueryd's C code reads from a value: SQLite's text
// up to the first NUL. ok is false for NULL, and for a real, whose text
// SQLite renders in ways this engine does not copy.
func cString(arg driver.Value) (s string, ok bool) {
	switch v := arg.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	default:
		return "", false
	}
	s, _, _ = strings.Cut(s, "\x00")
	return s, true
}

// hexDigest is osqueryd's md5, sha1 and sha256: the lowercase hex digest of
// the value's text; NULL gives NULL.
func hexDigest(name string, newHash func() hash.Hash) scalar {
	return func(arg driver.Value) (driver.Value, error) {
		if arg == nil {
			return nil, nil
		}
		s, ok := cString(arg)
		if !ok {
			return nil, fmt.Errorf("%s of a real: CAST it to text", name)
		}
		h := newHash()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil)), nil
	}
}

// inetAton is osqueryd's inet_aton: a dotted-quad IPv4 address as an
// integer, as inet_pton(AF_INET) reads it (four decimal numbers up to 255,
// no leading zeros); NULL for anything else, IPv6 included. A real never
// reads as an address.
func inetAton(arg driver.Value) (driver.Value, error) {
	s, ok := cString(arg)
	if !ok || strings.Contains(s, ":") {
		return nil, nil
	}
	addr, err := netip.ParseAddr(s)
	if err != nil || !addr.Is4() {
		return nil, nil
	}
	b := addr.As4()
	return int64(b[0])<<24 | int64(b[1])<<16 | int64(b[2])<<8 | int64(b[3]), nil
}
