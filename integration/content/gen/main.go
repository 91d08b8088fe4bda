// Command gen writes the osquery pack, Fleet YAML and Kolide checks rendered
// from integration/content/queries.yml into the directory given as its only
// argument (`make content` passes integration/content).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/osquery-fanotify/osquery-fanotify/integration/content"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gen OUTPUT_DIR")
		os.Exit(2)
	}
	if err := generate(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func generate(dir string) error {
	def, err := content.Load()
	if err != nil {
		return err
	}
	files, err := def.Files()
	if err != nil {
		return err
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
