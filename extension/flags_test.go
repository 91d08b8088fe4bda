package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want options
	}{
		{"as osqueryd passes them", []string{"--verbose", "--socket", "/s", "--timeout", "3", "--interval", "3"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, verbose: true, config: newConfigFlag()}},
		{"flag=value and one dash", []string{"-socket=/s", "--timeout=1.5", "-interval", "7", "--config=/c.json"},
			options{socket: "/s", timeout: 1500 * time.Millisecond, interval: 7 * time.Second, config: configFlag{path: "/c.json", given: true}}},
		{"defaults", []string{"--socket", "/s"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: newConfigFlag()}},
		{"verbose=false", []string{"--verbose=false", "--socket", "/s"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: newConfigFlag()}},
		{"unknown arguments are kept aside", []string{"--future", "x", "--socket", "/s", "--other=1"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: newConfigFlag(),
				ignored: []string{"--future", "x", "--other=1"}}},
		{"zero and negative waits as osquery's shortest", []string{"--socket", "/s", "--timeout", "0", "--interval=-1"},
			options{socket: "/s", timeout: 200 * time.Millisecond, interval: 200 * time.Millisecond, config: newConfigFlag()}},
		{"the default file named", []string{"--socket", "/s", "--config", config.DefaultPath},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: configFlag{path: config.DefaultPath, given: true}}},
		{"help needs no socket", []string{"-h"},
			options{timeout: 3 * time.Second, interval: 3 * time.Second, config: newConfigFlag(), help: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseOptions(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if got.socket != tt.want.socket || got.timeout != tt.want.timeout || got.interval != tt.want.interval ||
				got.verbose != tt.want.verbose || got.config != tt.want.config || got.help != tt.want.help ||
				!slices.Equal(got.ignored, tt.want.ignored) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseOptionsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--timeout", "3"}, "--socket is required"},
		{[]string{"--socket"}, "--socket needs a value"},
		{[]string{"--socket", "/s", "--timeout", "soon"}, `--timeout "soon": want a number of seconds`},
		{[]string{"--socket", "/s", "--interval="}, `--interval "": want a number of seconds`},
	}
	for _, tt := range tests {
		_, err := parseOptions(tt.args)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
}

// skipIfDefaultConfigExists skips a test that needs config.DefaultPath to
// be missing.
func skipIfDefaultConfigExists(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(config.DefaultPath); !errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s exists here (%v)", config.DefaultPath, err)
	}
}

// --config naming the default file must find it, as any named file: only
// without --config may the default file be missing.
func TestNamedDefaultConfigMustExist(t *testing.T) {
	skipIfDefaultConfigExists(t)
	named := newConfigFlag()
	if err := named.Set(config.DefaultPath); err != nil {
		t.Fatal(err)
	}
	if _, err := named.load(); err == nil || !strings.Contains(err.Error(), config.DefaultPath+": no such file") {
		t.Errorf("--config %s, missing: error %v, want one naming it", config.DefaultPath, err)
	}
	if _, err := newConfigFlag().load(); err != nil {
		t.Errorf("no --config, %s missing: error %v, want the defaults", config.DefaultPath, err)
	}
	if code := runQuery([]string{"--config", config.DefaultPath, "SELECT 1"}); code != 1 {
		t.Errorf("query --config %s, missing: exit %d, want 1", config.DefaultPath, code)
	}
	var out, errOut bytes.Buffer
	if code := report([]string{"--config", config.DefaultPath}, &out, false, &errOut); code != exitUnknown ||
		!strings.Contains(errOut.String(), config.DefaultPath+": no such file") {
		t.Errorf("report --config %s, missing: exit %d, stderr %q; want 3 and the path", config.DefaultPath, code, errOut.String())
	}
}
