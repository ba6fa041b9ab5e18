package migrate

import (
	"testing"
	"testing/fstest"
)

func TestList(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("B")},
		"m/0002_first.sql": {Data: []byte("A")},
		"m/README.md":      {Data: []byte("not a migration")},
	}
	got, err := List(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Version != 2 || got[0].SQL != "A" || got[1].Version != 10 || got[1].Name != "0010_later.sql" {
		t.Fatalf("List: %+v", got)
	}
}

func TestListRejects(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"no number":   {"m/init.sql": {}},
		"zero":        {"m/0000_init.sql": {}},
		"no name":     {"m/0001.sql": {}},
		"duplicate":   {"m/0001_a.sql": {}, "m/1_b.sql": {}},
		"no such dir": {},
	}
	for name, fsys := range tests {
		t.Run(name, func(t *testing.T) {
			if got, err := List(fsys, "m"); err == nil {
				t.Fatalf("List accepted it: %+v", got)
			}
		})
	}
}
