package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/integration/content"
)

func TestGenerateWritesEveryFile(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	def, err := content.Load()
	if err != nil {
		t.Fatal(err)
	}
	files, err := def.Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: not written as rendered (%v)", name, err)
		}
	}
}
