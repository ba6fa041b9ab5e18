package cluster

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestGolden renders the seed article's setup and compares every file with
// testdata/seed/golden. Run `go test ./internal/cluster -run Golden -update`
// after an intended change and review the diff.
func TestGolden(t *testing.T) {
	for _, name := range []string{"seed", "seed-email", "per-cluster", "seed-proxy"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("testdata", name)
			c, err := Load(filepath.Join(dir, "cluster.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			files, err := c.Render()
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join(dir, "golden")
			if *update {
				if err := os.RemoveAll(golden); err != nil {
					t.Fatal(err)
				}
				if err := WriteFiles(golden, files); err != nil {
					t.Fatal(err)
				}
			}
			entries, err := os.ReadDir(golden)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(files) {
				t.Errorf("golden has %d files, rendered %d", len(entries), len(files))
			}
			for _, f := range files {
				want, err := os.ReadFile(filepath.Join(golden, f.Name))
				if err != nil {
					t.Errorf("%s: %v", f.Name, err)
					continue
				}
				if string(want) != string(f.Data) {
					t.Errorf("%s differs from golden (run with -update and review):\n--- got\n%s\n--- want\n%s", f.Name, f.Data, want)
				}
			}
		})
	}
}
