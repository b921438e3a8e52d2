package integration

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sandboxKeys are the sandboxing options of baton@.service: the unit
// without them is the "without" column of scripts/README.md's table.
var sandboxKeys = []string{"NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateDevices", "ProtectKernelTunables",
	"ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock", "ProtectHostname",
	"RestrictRealtime", "RestrictSUIDSGID", "RestrictNamespaces", "LockPersonality", "SystemCallArchitectures",
	"SystemCallFilter", "RestrictAddressFamilies", "ProtectProc", "CapabilityBoundingSet"}

// TestSystemdSecurity: "systemd-analyze security" of the shipped units with
// and without their sandboxing, against scripts/README.md's table: the
// figures must match under the systemd the table names, and the sandboxing
// must lower the exposure under any.
func TestSystemdSecurity(t *testing.T) {
	s := bootSystemd(t)
	ctx := testContext(t)
	s.installBatonApp(ctx, t)
	s.installNginx(ctx, t)
	unit, err := os.ReadFile("../scripts/systemd/baton@.service")
	if err != nil {
		t.Fatal(err)
	}
	var plain []string
	for _, line := range strings.Split(string(unit), "\n") {
		key, _, _ := strings.Cut(line, "=")
		found := false
		for _, k := range sandboxKeys {
			found = found || key == k
		}
		if !found {
			plain = append(plain, line)
		}
	}
	s.write(t, "/etc/systemd/system/plain@.service", strings.Join(plain, "\n"), 0o644)
	s.must(ctx, t, "systemctl", "daemon-reload")
	baton := [2]float64{s.exposure(ctx, t, "plain@app.service"), s.exposure(ctx, t, batonUnit)}
	nginxWith := s.exposure(ctx, t, nginxUnit)
	if err := os.Remove(s.path("/etc/systemd/system/nginx.service.d/baton-hardening.conf")); err != nil {
		t.Fatal(err)
	}
	s.must(ctx, t, "systemctl", "daemon-reload")
	nginx := [2]float64{s.exposure(ctx, t, nginxUnit), nginxWith}
	t.Logf("systemd-analyze security: baton@.service %.1f -> %.1f, nginx.service %.1f -> %.1f", baton[0], baton[1], nginx[0], nginx[1])

	readme, err := os.ReadFile("../scripts/README.md")
	if err != nil {
		t.Fatal(err)
	}
	version := s.must(ctx, t, "systemctl", "--version").Stdout
	same := strings.Contains(string(readme), "(systemd "+strings.Fields(version)[1]+",")
	for name, got := range map[string][2]float64{"`baton@.service`": baton, "`nginx.service` + `baton-hardening.conf`": nginx} {
		if got[1] >= got[0] {
			t.Errorf("%s: the sandboxing does not lower the exposure: %.1f -> %.1f", name, got[0], got[1])
		}
		re := regexp.MustCompile(`\| ` + regexp.QuoteMeta(name) + ` \| ([0-9.]+) [A-Z]+ \| ([0-9.]+) [A-Z]+ \|`)
		m := re.FindStringSubmatch(string(readme))
		if m == nil {
			t.Errorf("scripts/README.md has no row for %s", name)
			continue
		}
		before, _ := strconv.ParseFloat(m[1], 64)
		after, _ := strconv.ParseFloat(m[2], 64)
		if same && (before != got[0] || after != got[1]) {
			t.Errorf("scripts/README.md says %s goes %.1f -> %.1f; measured %.1f -> %.1f", name, before, after, got[0], got[1])
		}
	}
	if !same {
		t.Logf("scripts/README.md's figures are for another systemd than %s: only the direction is checked", strings.SplitN(version, "\n", 2)[0])
	}
}

// exposure is "systemd-analyze security"'s overall exposure of unit.
func (s *sdns) exposure(ctx context.Context, t *testing.T, unit string) float64 {
	t.Helper()
	r := s.must(ctx, t, "systemd-analyze", "security", "--no-pager", unit)
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("systemd-analyze security %s: no overall exposure in\n%s", unit, r.Stdout)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
