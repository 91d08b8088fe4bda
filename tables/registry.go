package tables

import (
	"log/slog"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Env is what the tables read from. One Env serves every table, in osquery
// mode and in the embedded engine alike.
type Env struct {
	Proc   procfs.FS
	Config config.Config
	Log    *slog.Logger
}

// NewEnv prepares the readers every table shares. Close releases them.
func NewEnv(cfg config.Config, log *slog.Logger) *Env {
	return &Env{
		Proc:   procfs.NewFS(procfs.DefaultRoot),
		Config: cfg,
		Log:    log,
	}
}

// Close stops whatever NewEnv started.
func (env *Env) Close() {}

// All returns every table of the extension, in the order they are
// registered with osqueryd and the embedded engine.
func All(env *Env) []*Table {
	return []*Table{
		mountPoints(env),
	}
}
