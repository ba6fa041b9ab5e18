package front

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Run as the front (the test seam): the test binary, started by the tests
// below with GATEHOUSE_FRONT_TEST_ENGINE set, is the front with the engine
// read from that file, extracting to GATEHOUSE_FRONT_TEST_CACHE and, with
// GATEHOUSE_FRONT_TEST_NO_MEMORY=1, never starting it from memory. Only
// the test binary reads these variables.
func TestMain(m *testing.M) {
	if path := os.Getenv("GATEHOUSE_FRONT_TEST_ENGINE"); path != "" {
		engine, err := os.ReadFile(path)
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(97)
		}
		l := launcher{engine: engine, cacheRoot: os.Getenv("GATEHOUSE_FRONT_TEST_CACHE"), noMemory: os.Getenv("GATEHOUSE_FRONT_TEST_NO_MEMORY") == "1"}
		os.Exit(l.main(os.Args))
	}
	code := m.Run()
	if fakeDir != "" {
		os.RemoveAll(fakeDir)
	}
	os.Exit(code)
}

var (
	fakeOnce sync.Once
	fakeDir  string
	fakePath string
	fakeErr  error
)

// fakeEngine builds testdata/fakeengine once per test run.
func fakeEngine(t *testing.T) (path string, data []byte) {
	t.Helper()
	fakeOnce.Do(func() {
		if fakeDir, fakeErr = os.MkdirTemp("", "fakeengine-"); fakeErr != nil {
			return
		}
		fakePath = filepath.Join(fakeDir, "fakeengine")
		out, err := exec.Command("go", "build", "-o", fakePath, "./testdata/fakeengine").CombinedOutput()
		if err != nil {
			fakeErr = errors.New("go build ./testdata/fakeengine: " + err.Error() + "\n" + string(out))
		}
	})
	if fakeErr != nil {
		t.Fatal(fakeErr)
	}
	data, err := os.ReadFile(fakePath)
	if err != nil {
		t.Fatal(err)
	}
	return fakePath, data
}

// report is what testdata/fakeengine prints.
type report struct {
	Args  []string
	Pid   int
	Exe   string
	Env   string
	Stdin string
}

func engineName(data []byte) string {
	sum := sha256.Sum256(data)
	return "engine-" + hex.EncodeToString(sum[:]) + exeSuffix
}

func TestExtract(t *testing.T) {
	_, engine := fakeEngine(t)
	name := engineName(engine)
	tests := []struct {
		name string
		// before prepares the cache root's gatehouse folder (it exists,
		// 0700, unless before changes that).
		before func(t *testing.T, dir string)
		// wantErr, when set, is in the error; else the engine is extracted.
		wantErr string
		// wantWarning is in stderr (a file that is not the engine).
		wantWarning bool
		unixOnly    bool
		rootOnly    bool
	}{
		{name: "fresh"},
		{name: "folder missing", before: func(t *testing.T, dir string) { must(t, os.Remove(dir)) }},
		{name: "already there", before: func(t *testing.T, dir string) { must(t, os.WriteFile(filepath.Join(dir, name), engine, 0o700)) }},
		{name: "tampered, same size", wantWarning: true, before: func(t *testing.T, dir string) {
			bad := bytes.Clone(engine)
			bad[len(bad)/2] ^= 1
			must(t, os.WriteFile(filepath.Join(dir, name), bad, 0o700))
		}},
		{name: "truncated", wantWarning: true, before: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, name), engine[:100], 0o700))
		}},
		{name: "replaced by a script", wantWarning: true, before: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\necho TAMPERED\n"), 0o700))
		}},
		{name: "a symlink to the right bytes", wantWarning: true, unixOnly: true, before: func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "elsewhere")
			must(t, os.WriteFile(other, engine, 0o700))
			must(t, os.Symlink(other, filepath.Join(dir, name)))
		}},
		{name: "right bytes, writable by others", wantWarning: true, unixOnly: true, before: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, name), engine, 0o700))
			must(t, os.Chmod(filepath.Join(dir, name), 0o722))
		}},
		{name: "right bytes, another owner", wantWarning: true, unixOnly: true, rootOnly: true, before: func(t *testing.T, dir string) {
			must(t, os.WriteFile(filepath.Join(dir, name), engine, 0o700))
			must(t, os.Chown(filepath.Join(dir, name), 65534, 65534))
		}},
		{name: "folder open to others is narrowed", unixOnly: true, before: func(t *testing.T, dir string) { must(t, os.Chmod(dir, 0o777)) }},
		{name: "folder of another user", wantErr: "owned by uid 65534", unixOnly: true, rootOnly: true, before: func(t *testing.T, dir string) {
			must(t, os.Chown(dir, 65534, 65534))
		}},
		{name: "folder is a symlink to another user's", wantErr: "owned by uid 65534", unixOnly: true, rootOnly: true, before: func(t *testing.T, dir string) {
			other := filepath.Join(t.TempDir(), "theirs")
			must(t, os.Mkdir(other, 0o700))
			must(t, os.Chown(other, 65534, 65534))
			must(t, os.Remove(dir))
			must(t, os.Symlink(other, dir))
		}},
		{name: "folder is a file", wantErr: "not a directory", before: func(t *testing.T, dir string) {
			must(t, os.Remove(dir))
			must(t, os.WriteFile(dir, nil, 0o600))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.unixOnly && runtime.GOOS == "windows" {
				t.Skip("unix file modes")
			}
			if tt.rootOnly && os.Geteuid() != 0 {
				t.Skip("needs root to give files to another user")
			}
			root := t.TempDir()
			dir := filepath.Join(root, dirName)
			must(t, os.Mkdir(dir, 0o700))
			if tt.before != nil {
				tt.before(t, dir)
			}
			stderr := captureStderr(t)
			x, err := launcher{engine: engine, cacheRoot: root}.extract()
			warnings := stderr()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("extract: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("extract: %v", err)
			}
			defer x.File.Close()
			if got := strings.Contains(warnings, "not this kubectl-gatehouse's engine"); got != tt.wantWarning {
				t.Errorf("warning %v, want %v: %q", got, tt.wantWarning, warnings)
			}
			if x.Path != filepath.Join(x.Dir, name) {
				t.Errorf("path %s", x.Path)
			}
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, engine) {
				t.Fatalf("the extracted file is not the engine (%v)", err)
			}
			if runtime.GOOS != "windows" {
				for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, name): 0o700} {
					fi, err := os.Lstat(p)
					if err != nil || fi.Mode().Perm() != want || fi.Mode()&os.ModeSymlink != 0 {
						t.Errorf("%s: %v %v, want a %v file", p, fi.Mode(), err, want)
					}
				}
			}
			// What is open is what is there now.
			fi, err := x.File.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if now, err := os.Stat(x.Path); err != nil || !os.SameFile(fi, now) {
				t.Errorf("the open file is not the one at %s", x.Path)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// captureStderr redirects os.Stderr until the returned function is called,
// which returns what was written.
func captureStderr(t *testing.T) func() string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stderr
	os.Stderr = w
	done := make(chan string)
	go func() {
		var b bytes.Buffer
		b.ReadFrom(r)
		done <- b.String()
	}()
	return func() string {
		os.Stderr = old
		w.Close()
		return <-done
	}
}

func TestRemoveStale(t *testing.T) {
	_, engine := fakeEngine(t)
	root := t.TempDir()
	dir := filepath.Join(root, dirName)
	must(t, os.Mkdir(dir, 0o700))
	old := filepath.Join(dir, "engine-0123")
	oldTmp := filepath.Join(dir, ".engine-1-old.tmp")
	newTmp := filepath.Join(dir, ".engine-2-new.tmp")
	other := filepath.Join(dir, "notes")
	for _, p := range []string{old, oldTmp, newTmp, other} {
		must(t, os.WriteFile(p, nil, 0o600))
	}
	long := time.Now().Add(-2 * time.Hour)
	must(t, os.Chtimes(oldTmp, long, long))
	x, err := launcher{engine: engine, cacheRoot: root}.extract()
	if err != nil {
		t.Fatal(err)
	}
	x.File.Close()
	for p, want := range map[string]bool{old: false, oldTmp: false, newTmp: true, other: true, x.Path: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// runFront runs the test binary as the front (see TestMain) under the name
// argv0 (a symlink to the test binary), with the engine at enginePath.
func runFront(t *testing.T, enginePath, cacheRoot string, noMemory bool, argv0 string, args []string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), argv0)
	must(t, os.Symlink(self, link))
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), "GATEHOUSE_FRONT_TEST_ENGINE="+enginePath, "GATEHOUSE_FRONT_TEST_CACHE="+cacheRoot, "FAKE_ENGINE_ENV=passed")
	if noMemory {
		cmd.Env = append(cmd.Env, "GATEHOUSE_FRONT_TEST_NO_MEMORY=1")
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run the front: %v", err)
	}
	if ee != nil {
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

func decodeReport(t *testing.T, stdout string) report {
	t.Helper()
	var r report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("not the fake engine's report: %q (%v)", stdout, err)
	}
	return r
}

// TestForcedExtraction starts the engine the way systems without an
// executable memfd do: extracted, verified, exec'd; a tampered file is
// replaced, not run.
func TestForcedExtraction(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the fake engine's report is checked for exec (same pid)")
	}
	enginePath, engine := fakeEngine(t)
	root := t.TempDir()
	file := filepath.Join(root, dirName, engineName(engine))

	stdout, stderr, code := runFront(t, enginePath, root, true, "kubectl-oidc_login", []string{"get-token", "--no-such-flag"}, "FAKE_ENGINE_EXIT=7")
	r := decodeReport(t, stdout)
	if code != 7 || !strings.Contains(stderr, "fake engine: a line on stderr") {
		t.Errorf("exit code %d, stderr %q", code, stderr)
	}
	if filepath.Base(r.Args[0]) != "kubectl-oidc_login" || strings.Join(r.Args[1:], " ") != "get-token --no-such-flag" || r.Env != "passed" {
		t.Errorf("engine started with %+v", r)
	}
	if runtime.GOOS == "linux" && r.Exe != file {
		t.Errorf("engine runs from %q, want %q", r.Exe, file)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, engine) {
		t.Fatalf("%s is not the engine: %v", file, err)
	}

	// Tampered: the script would print TAMPERED if it ran.
	script := append([]byte("#!/bin/sh\necho TAMPERED\nexit 0\n"), make([]byte, len(engine))...)[:len(engine)]
	must(t, os.WriteFile(file, script, 0o700))
	stdout, stderr, code = runFront(t, enginePath, root, true, "kubectl-gatehouse", []string{"version"})
	if strings.Contains(stdout, "TAMPERED") || code != 0 {
		t.Fatalf("ran the tampered file: %q, exit %d", stdout, code)
	}
	if r := decodeReport(t, stdout); strings.Join(r.Args[1:], " ") != "version" {
		t.Errorf("engine started with %+v", r)
	}
	if !strings.Contains(stderr, "not this kubectl-gatehouse's engine") || !strings.Contains(stderr, file) {
		t.Errorf("no warning about the tampered file: %q", stderr)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, engine) {
		t.Fatalf("%s was not restored: %v", file, err)
	}
}

// TestMemory starts the engine from memory (Linux).
func TestMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("memfd is Linux's")
	}
	enginePath, _ := fakeEngine(t)
	root := t.TempDir()
	stdout, _, code := runFront(t, enginePath, root, false, "kubectl-gatehouse", []string{"version"})
	r := decodeReport(t, stdout)
	if code != 0 || !strings.HasPrefix(r.Exe, "/memfd:kubectl-gatehouse-engine") {
		t.Errorf("exit %d, engine runs from %q, want a memfd", code, r.Exe)
	}
	if _, err := os.Stat(filepath.Join(root, dirName)); err == nil {
		t.Error("extracted although the memfd worked")
	}
}

// TestStartFails: when neither way works, one line says what to do.
func TestStartFails(t *testing.T) {
	enginePath, _ := fakeEngine(t)
	notAFolder := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(notAFolder, nil, 0o600))
	stdout, stderr, code := runFront(t, enginePath, notAFolder, true, "kubectl-gatehouse", []string{"version"})
	if code != 1 || stdout != "" {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	if !strings.HasPrefix(stderr, "error: cannot start kubectl-gatehouse's engine") || !strings.Contains(stderr, startHint) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("stderr %q", stderr)
	}
}
