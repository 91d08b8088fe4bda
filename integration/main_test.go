package integration_test

import (
	"os"
	"testing"

	"github.com/osquery-fanotify/osquery-fanotify/integration/standin"
)

func TestMain(m *testing.M) { os.Exit(standin.Main(m)) }
