// Package klogflag accepts klog's command-line flags (kubelogin's
// persistent flags: -v, --vmodule, --logtostderr, --log_file, ...) with
// klog's syntax and errors but without klog, for the one-file plugin's
// front end: on a cache hit kubelogin logs only at -v 1 and above, so the
// front must accept every klog flag (a kubeconfig written for kubelogin may
// carry them), refuse the values klog refuses, and hand verbose runs to the
// engine, which logs through klog itself (internal/login/cli).
//
// klog is not linked here because its package initialisation and its
// dependencies (log/slog, os/user, go-logr) would be paid by every cache
// hit; the tests check these values against klog's own.
package klogflag

import (
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
)

// Flags are the values that decide whether klog would print anything.
type Flags struct {
	// V is -v.
	V int32
	// VModule is true when --vmodule raises some file above level 0.
	VModule bool
}

// Add registers klog v2.140.0's flags on f with kubelogin's defaults and
// klog's help texts.
func (s *Flags) Add(f *pflag.FlagSet) {
	var (
		b   bool
		str string
		u   uint64
	)
	f.BoolVar(&b, "add_dir_header", false, "If true, adds the file directory to the header of the log messages")
	f.BoolVar(&b, "alsologtostderr", false, "log to standard error as well as files (no effect when -logtostderr=true)")
	f.Var(severity{}, "alsologtostderrthreshold", "logs at or above this threshold go to stderr when -alsologtostderr=true (no effect when -logtostderr=true)")
	f.BoolVar(&b, "legacy_stderr_threshold_behavior", false, "If true, stderrthreshold is ignored when logtostderr=true (legacy behavior). If false, stderrthreshold is honored even when logtostderr=true")
	f.Var(traceLocation{}, "log_backtrace_at", "when logging hits line file:N, emit a stack trace")
	f.StringVar(&str, "log_dir", "", "If non-empty, write log files in this directory (no effect when -logtostderr=true)")
	f.StringVar(&str, "log_file", "", "If non-empty, use this log file (no effect when -logtostderr=true)")
	f.Uint64Var(&u, "log_file_max_size", 1800, "Defines the maximum size a log file can grow to (no effect when -logtostderr=true). Unit is megabytes. If the value is 0, the maximum file size is unlimited.")
	f.BoolVar(&b, "logtostderr", true, "log to standard error instead of files")
	f.BoolVar(&b, "one_output", false, "If true, only write logs to their native severity level (vs also writing to each lower severity level; no effect when -logtostderr=true)")
	f.BoolVar(&b, "skip_headers", false, "If true, avoid header prefixes in the log messages")
	f.BoolVar(&b, "skip_log_headers", false, "If true, avoid headers when opening log files (no effect when -logtostderr=true)")
	f.Var(severity{}, "stderrthreshold", "logs at or above this threshold go to stderr when writing to files and stderr (no effect when -logtostderr=true or -alsologtostderr=true unless -legacy_stderr_threshold_behavior=false)")
	f.VarP((*level)(&s.V), "v", "v", "number for the log level verbosity")
	f.Var((*moduleSpec)(&s.VModule), "vmodule", "comma-separated list of pattern=N settings for file-filtered logging")
}

// Verbose reports whether klog would print V(1) lines for some file.
func (s *Flags) Verbose() bool { return s.V >= 1 || s.VModule }

// level is klog.Level's syntax: a base-10 int32.
type level int32

func (l *level) Set(v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return err
	}
	*l = level(n)
	return nil
}
func (l *level) String() string { return strconv.Itoa(int(*l)) }
func (l *level) Type() string   { return "Level" }

// severity is klog's severity syntax: a name (any case) or a base-10 int32.
type severity struct{}

func (severity) Set(v string) error {
	switch strings.ToUpper(v) {
	case "INFO", "WARNING", "ERROR", "FATAL":
		return nil
	}
	_, err := strconv.ParseInt(v, 10, 32)
	return err
}
func (severity) String() string { return "" }
func (severity) Type() string   { return "severity" }

var errVmoduleSyntax = errors.New("syntax error: expect comma-separated list of filename=N")

// moduleSpec is klog's --vmodule syntax; the value records whether some
// pattern has a level above 0.
type moduleSpec bool

func (m *moduleSpec) Set(v string) error {
	raised := false
	for _, pat := range strings.Split(v, ",") {
		if pat == "" {
			continue
		}
		patLev := strings.Split(pat, "=")
		if len(patLev) != 2 || patLev[0] == "" || patLev[1] == "" {
			return errVmoduleSyntax
		}
		n, err := strconv.ParseInt(patLev[1], 10, 32)
		if err != nil {
			return errVmoduleSyntax
		}
		if n < 0 {
			return errors.New("negative value for vmodule level")
		}
		raised = raised || n > 0
	}
	*m = moduleSpec(raised)
	return nil
}
func (m *moduleSpec) String() string { return "" }
func (m *moduleSpec) Type() string   { return "moduleSpec" }

var errTraceSyntax = errors.New("syntax error: expect file.go:234")

// traceLocation is klog's --log_backtrace_at syntax: "" or file.go:N.
type traceLocation struct{}

func (traceLocation) Set(v string) error {
	if v == "" {
		return nil
	}
	fields := strings.Split(v, ":")
	if len(fields) != 2 || !strings.Contains(fields[0], ".") {
		return errTraceSyntax
	}
	n, err := strconv.Atoi(fields[1])
	if err != nil {
		return errTraceSyntax
	}
	if n <= 0 {
		return errors.New("negative or zero value for level")
	}
	return nil
}
func (traceLocation) String() string { return ":0" }
func (traceLocation) Type() string   { return "traceLocation" }
