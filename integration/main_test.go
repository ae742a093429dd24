//go:build integration

package integration

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("OBS_HARNESS_FAKE_OLLAMA") == "1" {
		fakeOllamaMain() // never returns
	}
	code := m.Run()
	cleanupFakes()
	os.Exit(code)
}
