package integration

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScriptsUnitSecurity rates baton@.service with `systemd-analyze
// security`: its sandboxing must keep the exposure at 5.0 or below (it was
// 9.8, UNSAFE, with none).
func TestScriptsUnitSecurity(t *testing.T) {
	analyze := initdRequireTool(t, "systemd-analyze")
	unit := filepath.Join(initdRoot(t), "systemd", "baton@.service")
	ctx := testContext(t)
	out, err := initdCombined(exec.CommandContext(ctx, analyze, "security", "--offline=yes", "--root=/", "--threshold=50", unit))
	last := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(last, '\n'); i >= 0 {
		last = last[i+1:]
	}
	if err != nil {
		t.Errorf("systemd-analyze security %s: %v: %s", unit, err, last)
	} else {
		t.Log(last)
	}
}
