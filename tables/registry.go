package tables

import (
	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
	"github.com/osquery-fanotify/osquery-fanotify/fanotify/procfs"
)

// Env is what the tables read from.
type Env struct {
	Proc   procfs.FS
	Config config.Config
}

// All returns every table of the extension, in the order they are
// registered with osqueryd and the embedded engine.
func All(env *Env) []*Table {
	return []*Table{
	}
}
