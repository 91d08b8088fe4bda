// Package config loads fanotify.ext's JSON configuration file.
//
// osqueryd passes no custom flags to autoloaded extensions, so a file is the
// only way a fleet configures the extension. A missing file at DefaultPath,
// read when no file is named, means defaults. A named file that does not
// exist, or one with unknown keys or bad values, yields an error (naming the
// key) together with the defaults, so the extension keeps serving.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

// DefaultPath is where packages install the configuration file.
const DefaultPath = "/etc/osquery/fanotify.json"

// Config is the whole configuration file.
type Config struct {
	// GenerateTimeoutS bounds one table generate, in seconds.
	GenerateTimeoutS int `json:"generate_timeout_s"`
	// MaxConcurrentGenerates caps generates running at once; osqueryd calls
	// them concurrently, one goroutine per connection.
	MaxConcurrentGenerates int `json:"max_concurrent_generates"`
	// RiskWarningPct and RiskCriticalPct are utilization thresholds in percent.
	RiskWarningPct  float64 `json:"risk_warning_pct"`
	RiskCriticalPct float64 `json:"risk_critical_pct"`
	// ScanBudgetMS bounds one walk of /proc; a walk over it is reported as
	// incomplete instead of silently undercounting. See WalkBudget.
	ScanBudgetMS int `json:"scan_budget_ms"`
	// MaxRows caps the rows of one fanotify_marks or inotify_watches
	// generate, which grow with every mark on the host: osqueryd holds a
	// result whole, and its watchdog restarts a worker over 200 MB.
	MaxRows int `json:"max_rows"`

	Collector Collector `json:"collector"`
}

// Collector configures the fanotify event collector.
type Collector struct {
	Enabled      bool     `json:"enabled"`
	Paths        []string `json:"paths"`
	Mark         string   `json:"mark"`
	Events       []string `json:"events"`
	ExcludePaths []string `json:"exclude_paths"`
	BufferMax    int      `json:"buffer_max"`
	ExpiryS      int      `json:"expiry_s"`
}

// MarkStrategies are the accepted values of collector.mark.
var MarkStrategies = []string{"auto", "filesystem", "mount", "inode"}

// EventNames are the accepted values of collector.events.
var EventNames = []string{
	"access", "modify", "open", "open_exec", "close_write", "close_nowrite",
	"create", "delete", "moved_from", "moved_to", "attrib", "delete_self", "move_self",
}

// Default returns the configuration used when no file exists.
func Default() Config {
	return Config{
		GenerateTimeoutS:       60,
		MaxConcurrentGenerates: 4,
		RiskWarningPct:         75,
		RiskCriticalPct:        90,
		ScanBudgetMS:           10000,
		MaxRows:                100000,
		Collector: Collector{
			Mark:      "auto",
			Events:    []string{"modify", "close_write", "create", "delete", "moved_from", "moved_to"},
			BufferMax: 50000,
			ExpiryS:   3600,
		},
	}
}

// WalkBudget is the bound on one walk of /proc: scan_budget_ms, and at most
// half of generate_timeout_s. A walk over its budget returns rows marked
// incomplete, where one that the generate's timeout cut short would fail
// the query; a query may wait for a walk in progress and then for one
// reading more.
func (c Config) WalkBudget() time.Duration {
	return min(time.Duration(c.ScanBudgetMS)*time.Millisecond, time.Duration(c.GenerateTimeoutS)*time.Second/2)
}

// Load reads the file at path, which must exist: a file named on purpose
// that is missing is a mistake (a typo, a wrong directory). Like any other
// problem it yields the defaults and an error, naming the offending key if
// any.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err // the message names the path once, first
	}
	if err != nil {
		return Default(), fmt.Errorf("config %s: %w", path, err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Default(), fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// LoadDefault reads the file at DefaultPath, which is optional: missing, it
// yields the defaults and no error.
func LoadDefault() (Config, error) {
	cfg, err := Load(DefaultPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	return cfg, err
}

// Parse decodes and validates a configuration document. Keys left out keep
// their defaults.
func Parse(data []byte) (Config, error) {
	// Some editors begin a UTF-8 file with a byte order mark, which JSON
	// forbids and RFC 8259 lets a parser skip.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	if len(bytes.TrimSpace(data)) == 0 {
		return Default(), errors.New("the file is empty: write {} for the defaults")
	}
	if err := checkKeys(data); err != nil {
		return Default(), err
	}
	cfg := Default()
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cfg); err != nil {
		return Default(), decodeError(err)
	}
	// More() misses a stray '}' or ']', so demand the end of input instead.
	if _, err := dec.Token(); err != io.EOF {
		return Default(), errors.New("trailing data after the JSON object")
	}
	if err := cfg.validate(); err != nil {
		return Default(), err
	}
	return cfg, nil
}

// decodeError rewrites encoding/json's messages so they lead with the key.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return fmt.Errorf("the configuration must be a JSON object, got JSON %s", typeErr.Value)
		}
		return fmt.Errorf("key %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
	}
	return syntaxError(err)
}

// checkKeys walks the document once before it is decoded: encoding/json
// matches keys in any case and lets the last of a repeated key win, while a
// key must be spelt as documented and set once. The first offending key in
// the file is named, with its parents ("collector.path").
func checkKeys(data []byte) error {
	return checkValue(json.NewDecoder(bytes.NewReader(data)), reflect.TypeFor[Config](), "")
}

// checkValue reads the next value. Where it is an object meant for struct
// t, each key must be a key of t; the keys of objects meant for no struct
// are left to the decoder, which rejects such objects by type.
func checkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return syntaxError(err)
	}
	switch tok {
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec, nil, path); err != nil {
				return err
			}
		}
	case json.Delim('{'):
		if err := checkObject(dec, t, path); err != nil {
			return err
		}
	default:
		return nil // a scalar: no closing token to read
	}
	if _, err := dec.Token(); err != nil { // the closing bracket or brace
		return syntaxError(err)
	}
	return nil
}

// checkObject reads the members of an object up to its closing brace.
func checkObject(dec *json.Decoder, t reflect.Type, path string) error {
	isStruct := t != nil && t.Kind() == reflect.Struct
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntaxError(err)
		}
		key := tok.(string) // the decoder returns nothing else in a key's place
		name := strings.TrimPrefix(path+"."+key, ".")
		field, known := jsonField(t, key)
		if isStruct && !known {
			return fmt.Errorf("key %q: unknown key", name)
		}
		if isStruct && seen[key] {
			return fmt.Errorf("key %q: set more than once", name)
		}
		seen[key] = true
		if err := checkValue(dec, field, name); err != nil {
			return err
		}
	}
	return nil
}

// syntaxError words a decoder's error; a document cut short ends in io.EOF.
func syntaxError(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// jsonField returns the type of the field of struct t that key names,
// exactly as spelt in its tag.
func jsonField(t reflect.Type, key string) (reflect.Type, bool) {
	if t == nil || t.Kind() != reflect.Struct {
		return nil, false
	}
	for f := range t.Fields() {
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == key {
			return f.Type, true
		}
	}
	return nil, false
}

func (c Config) validate() error {
	checks := []struct {
		key string
		ok  bool
		why string
	}{
		{"generate_timeout_s", c.GenerateTimeoutS >= 1 && c.GenerateTimeoutS <= 3600, "must be 1..3600"},
		{"max_concurrent_generates", c.MaxConcurrentGenerates >= 1 && c.MaxConcurrentGenerates <= 64, "must be 1..64"},
		{"risk_warning_pct", c.RiskWarningPct > 0 && c.RiskWarningPct < 100, "must be between 0 and 100"},
		{"risk_critical_pct", c.RiskCriticalPct > c.RiskWarningPct && c.RiskCriticalPct <= 100, "must be above risk_warning_pct and at most 100"},
		// Upper bounds keep the values clear of time.Duration overflow.
		{"scan_budget_ms", c.ScanBudgetMS >= 100 && c.ScanBudgetMS <= 3600000, "must be 100..3600000"},
		{"max_rows", c.MaxRows >= 1 && c.MaxRows <= 100000000, "must be 1..100000000"},
		{"collector.mark", slices.Contains(MarkStrategies, c.Collector.Mark), "must be one of " + strings.Join(MarkStrategies, ", ")},
		{"collector.buffer_max", c.Collector.BufferMax >= 1 && c.Collector.BufferMax <= 1000000, "must be 1..1000000"},
		{"collector.expiry_s", c.Collector.ExpiryS >= 1 && c.Collector.ExpiryS <= 31536000, "must be 1..31536000 (one year)"},
		{"collector.events", len(c.Collector.Events) > 0, "must name at least one event"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fmt.Errorf("key %q: %s", ch.key, ch.why)
		}
	}
	for _, e := range c.Collector.Events {
		if !slices.Contains(EventNames, e) {
			return fmt.Errorf("key \"collector.events\": unknown event %q (known: %s)", e, strings.Join(EventNames, ", "))
		}
	}
	if err := checkPaths("collector.paths", c.Collector.Paths); err != nil {
		return err
	}
	if err := checkPaths("collector.exclude_paths", c.Collector.ExcludePaths); err != nil {
		return err
	}
	if c.Collector.Enabled && len(c.Collector.Paths) == 0 {
		return errors.New(`key "collector.paths": the enabled collector needs at least one path`)
	}
	return nil
}

// checkPaths rejects paths the kernel cannot take: relative ones, and ones
// holding a NUL byte, which would only fail later at fanotify_mark.
func checkPaths(key string, paths []string) error {
	for _, p := range paths {
		if !strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
			return fmt.Errorf("key %q: path %q must be absolute and free of NUL bytes", key, p)
		}
	}
	return nil
}
