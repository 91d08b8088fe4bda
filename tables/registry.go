package tables

import (
	"log/slog"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Env is what the tables read from. One Env serves every table, in osquery
// mode and in the embedded engine alike.
type Env struct {
	Proc   procfs.FS
	Config config.Config
	// ConfigError is why the configuration file was rejected, leaving
	// the defaults in Config; nil when the file was read or is absent.
	ConfigError error
	Log         *slog.Logger
	// Usage walks /proc for fanotify groups and inotify instances; every
	// table of a query (and concurrent queries) share its snapshots.
	Usage *fanotify.Scanner
	// Collector records file events when collector.enabled; nil otherwise.
	Collector *fanotify.Collector
}

// NewEnv prepares the readers every table shares. Close releases them.
func NewEnv(cfg config.Config, log *slog.Logger) *Env {
	proc := procfs.NewFS(procfs.DefaultRoot)
	env := &Env{
		Proc:   proc,
		Config: cfg,
		Log:    log,
		Usage:  fanotify.NewScanner(proc, cfg.WalkBudget(), fanotify.KeptMarks, log),
	}
	if cfg.Collector.Enabled {
		env.Collector = fanotify.StartCollector(cfg.Collector, log)
	}
	return env
}

// Close stops whatever NewEnv started.
func (env *Env) Close() {
	if env.Collector != nil {
		env.Collector.Stop()
	}
}

// All returns every table of the extension, in the order they are
// registered with osqueryd and the embedded engine.
func All(env *Env) []*Table {
	return []*Table{
		mountPoints(env),
		fanotifyLimits(env),
		fanotifyGroups(env),
		fanotifyMarks(env),
		inotifyInstances(env),
		inotifyWatches(env),
		fanotifyFeatures(),
		fanotifyEvents(env),
		fanotifyCollector(env),
	}
}
