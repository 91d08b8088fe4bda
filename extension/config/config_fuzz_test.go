package config

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzConfigParse checks that Parse never panics, that a rejected document
// yields exactly the defaults, and that an accepted configuration is valid
// and survives being written out and parsed again unchanged.
func FuzzConfigParse(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"generate_timeout_s": 30, "max_concurrent_generates": 2, "risk_warning_pct": 70, "risk_critical_pct": 95, "scan_budget_ms": 5000}`,
		`{"collector": {"enabled": true, "paths": ["/srv", "/home"], "mark": "filesystem",
			"events": ["open_exec", "close_write"], "exclude_paths": ["/home/build"], "buffer_max": 1000, "expiry_s": 600}}`,
		`{"collector": {"enabled": true}}`,
		`{"collector": {"paths": ["relative"]}}`,
		`{"risk_warning_pct": 90, "risk_critical_pct": 90}`,
		`{"generate_timeout_s": "60"}`,
		`{"unknown": true}`,
		`{} }`,
		`[]`,
		`null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			if !reflect.DeepEqual(cfg, Default()) {
				t.Fatalf("error %v came with %+v, want the defaults", err, cfg)
			}
			return
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("accepted a configuration that fails validation: %v", err)
		}
		out, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("written-out configuration %s rejected: %v", out, err)
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", cfg, again)
		}
	})
}
