package main

import (
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
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, verbose: true, config: config.DefaultPath}},
		{"flag=value and one dash", []string{"-socket=/s", "--timeout=1.5", "-interval", "7", "--config=/c.json"},
			options{socket: "/s", timeout: 1500 * time.Millisecond, interval: 7 * time.Second, config: "/c.json"}},
		{"defaults", []string{"--socket", "/s"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: config.DefaultPath}},
		{"verbose=false", []string{"--verbose=false", "--socket", "/s"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: config.DefaultPath}},
		{"unknown arguments are kept aside", []string{"--future", "x", "--socket", "/s", "--other=1"},
			options{socket: "/s", timeout: 3 * time.Second, interval: 3 * time.Second, config: config.DefaultPath,
				ignored: []string{"--future", "x", "--other=1"}}},
		{"zero and negative waits as osquery's shortest", []string{"--socket", "/s", "--timeout", "0", "--interval=-1"},
			options{socket: "/s", timeout: 200 * time.Millisecond, interval: 200 * time.Millisecond, config: config.DefaultPath}},
		{"help needs no socket", []string{"-h"},
			options{timeout: 3 * time.Second, interval: 3 * time.Second, config: config.DefaultPath, help: true}},
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
