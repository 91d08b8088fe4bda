package integration_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/extension/config"
)

// configKeys lists the dotted JSON keys of a configuration struct.
func configKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, configKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

// The README documents every key of the configuration file.
func TestReadmeDocumentsEveryConfigKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeFor[config.Config](), "")
	if len(keys) == 0 {
		t.Fatal("no configuration keys found")
	}
	for _, key := range keys {
		if !strings.Contains(string(readme), "| `"+key+"` |") {
			t.Errorf("README.md has no row for configuration key %s", key)
		}
	}
}
