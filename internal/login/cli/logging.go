package cli

import (
	"flag"
	"sync"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// kubeloginLogDefaults are klog's flag defaults as kubelogin sets them
// (pkg/infrastructure/logger at v1.36.3): stderrthreshold is honoured even
// with -logtostderr, and is INFO.
var kubeloginLogDefaults = []struct{ name, value string }{
	{"add_dir_header", "false"},
	{"alsologtostderr", "false"},
	{"alsologtostderrthreshold", "INFO"},
	{"legacy_stderr_threshold_behavior", "false"},
	{"log_backtrace_at", ""},
	{"log_dir", ""},
	{"log_file", ""},
	{"log_file_max_size", "1800"},
	{"logtostderr", "true"},
	{"one_output", "false"},
	{"skip_headers", "false"},
	{"skip_log_headers", "false"},
	{"stderrthreshold", "INFO"},
	{"v", "0"},
	{"vmodule", ""},
}

// klogMu serialises the setting of klog's process-wide flags (tests run
// Main several times in one process).
var klogMu sync.Mutex

// addLogFlags adds klog's flags to f, as kubelogin adds them to every
// command: -v, --vmodule, --logtostderr, --log_file, ... They set klog's
// process-wide state, which is first reset to kubelogin's defaults, so
// each run of Main starts from them. Verbose messages (V(1) and up) go
// through klog with kubelogin's meaning; everything else the plugin says
// goes to Env.Stderr, as kubelogin's non-klog messages do.
func addLogFlags(f *pflag.FlagSet) {
	klogMu.Lock()
	defer klogMu.Unlock()
	gf := flag.NewFlagSet("", flag.ContinueOnError)
	klog.InitFlags(gf)
	for _, d := range kubeloginLogDefaults {
		// Set only what differs, so that runs with the defaults write
		// nothing that another goroutine may be reading.
		if fl := gf.Lookup(d.name); fl != nil && fl.Value.String() != d.value && !(d.name == "log_backtrace_at" && fl.Value.String() == ":0") {
			_ = fl.Value.Set(d.value)
		}
	}
	f.AddGoFlagSet(gf)
}

// vlog logs at klog's -v 1, attributed (file:line in the header, --vmodule
// matching) to the caller of the caller of vlog: the use case's line that
// called its own log helper.
func vlog(format string, args ...any) {
	if v := klog.VDepth(2, 1); v.Enabled() {
		v.InfofDepth(2, format, args...)
	}
}

// flushLogs writes out klog's buffered log files before the process
// exits. (kubelogin exits without it and so loses what it wrote to
// --log_file or --log_dir; losing log lines is no part of its meaning.)
func flushLogs() { klog.Flush() }
