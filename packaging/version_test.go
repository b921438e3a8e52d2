package main

import "testing"

// TestDebianVersion: Go's tags become a native package's version that
// sorts as the tags do (a prerelease before its release, a build between
// tags after the earlier one) and has no "-", which would start a Debian
// revision.
func TestDebianVersion(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{name: "release", in: "v1.2.3", want: "1.2.3"},
		{name: "prerelease", in: "v1.2.3-rc.1", want: "1.2.3~rc.1"},
		{name: "prerelease-hyphens", in: "v1.2.3-beta-2", want: "1.2.3~beta.2"},
		{name: "between-tags", in: "v1.2.3+git.20251203070100.2bb8d3a1b2c3", want: "1.2.3+git.20251203070100.2bb8d3a1b2c3"},
		{name: "dirty", in: "v0.0.0+git.20251203070100.2bb8d3a1b2c3.dirty", want: "0.0.0+git.20251203070100.2bb8d3a1b2c3.dirty"},
		{name: "no-v", in: "1.2.3"},
		{name: "two-numbers", in: "v1.2"},
		{name: "leading-zero", in: "v1.02.3"},
		{name: "space", in: "v1.2.3 "},
		{name: "underscore", in: "v1.2.3-rc_1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := debianVersion(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Errorf("debianVersion(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("debianVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
