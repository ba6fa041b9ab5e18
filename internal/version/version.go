// Package version reports what a binary was built from. Version is set at
// release time with -ldflags "-X .../internal/version.Version=v1.2.3", and
// Revision with "-X .../internal/version.Revision=<commit>" (the image and
// release tools build with -buildvcs=false, so the Go build info has no
// commit); otherwise the VCS revision comes from the Go build info when
// available.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version, set by the linker for releases.
var Version = "dev"

// Revision is the commit, set by the linker for images and releases.
var Revision = ""

// String returns "<name> <version> (<revision>, <go version>)".
func String(name string) string {
	rev := "unknown"
	info, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if Revision != "" {
		rev = Revision
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if ok && Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return fmt.Sprintf("%s %s (%s, %s)", name, info.Main.Version, rev, runtime.Version())
	}
	return fmt.Sprintf("%s %s (%s, %s)", name, Version, rev, runtime.Version())
}
