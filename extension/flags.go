package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

// options are the arguments osqueryd passes to an autoloaded extension,
// plus --config for running it by hand.
type options struct {
	socket   string
	timeout  time.Duration
	interval time.Duration
	verbose  bool
	config   configFlag
	help     bool
	// ignored holds arguments this version does not know. Newer osqueryd
	// versions may pass more; dying on them would take the tables away.
	ignored []string
}

// minWait is the shortest --timeout and --interval: osquery waits at least
// 200 ms for an extension's socket whatever its --extensions_timeout.
const minWait = 200 * time.Millisecond

// parseOptions accepts "--name value", "--name=value" and single-dash forms.
func parseOptions(args []string) (options, error) {
	o := options{timeout: 3 * time.Second, interval: 3 * time.Second, config: newConfigFlag()}
	for i := 0; i < len(args); i++ {
		name, value, hasValue := splitFlag(args[i])
		switch name {
		case "verbose":
			o.verbose = !hasValue || value == "true" || value == "1"
		case "h", "help":
			o.help = true
		case "socket", "timeout", "interval", "config":
			if !hasValue {
				if i+1 == len(args) {
					return o, fmt.Errorf("--%s needs a value", name)
				}
				i++
				value = args[i]
			}
			if err := o.set(name, value); err != nil {
				return o, err
			}
		default:
			o.ignored = append(o.ignored, args[i])
		}
	}
	if o.socket == "" && !o.help {
		return o, fmt.Errorf("--socket is required (osqueryd passes its extension socket)")
	}
	return o, nil
}

func (o *options) set(name, value string) error {
	switch name {
	case "socket":
		o.socket = value
	case "config":
		return o.config.Set(value)
	case "timeout", "interval":
		secs, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("--%s %q: want a number of seconds", name, value)
		}
		// osqueryd passes its flags as set, 0 included; refusing them
		// would have it relaunch the extension forever.
		d := max(time.Duration(secs*float64(time.Second)), minWait)
		if name == "timeout" {
			o.timeout = d
		} else {
			o.interval = d
		}
	}
	return nil
}

// splitFlag returns the name and inline value of a flag argument; a
// non-flag argument yields no name.
func splitFlag(arg string) (name, value string, hasValue bool) {
	if !strings.HasPrefix(arg, "-") {
		return "", "", false
	}
	name = strings.TrimLeft(arg, "-")
	name, value, hasValue = strings.Cut(name, "=")
	return name, value, hasValue
}

// configFlag is --config. A file named there must exist; without the flag
// the file at config.DefaultPath is read, and may be missing.
type configFlag struct {
	path  string
	given bool
}

func newConfigFlag() configFlag {
	return configFlag{path: config.DefaultPath}
}

func (f *configFlag) String() string { return f.path }

func (f *configFlag) Set(path string) error {
	f.path, f.given = path, true
	return nil
}

// load reads the configuration; on an error it also returns the defaults.
func (f configFlag) load() (config.Config, error) {
	if f.given {
		return config.Load(f.path)
	}
	return config.LoadDefault()
}
