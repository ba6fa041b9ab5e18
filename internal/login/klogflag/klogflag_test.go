package klogflag

import (
	"flag"
	"testing"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// klogFlags are klog's own flags, as kubelogin adds them.
func klogFlags() *pflag.FlagSet {
	gf := flag.NewFlagSet("", flag.ContinueOnError)
	klog.InitFlags(gf)
	f := pflag.NewFlagSet("klog", pflag.ContinueOnError)
	f.AddGoFlagSet(gf)
	return f
}

// Same flags, types, shorthands and bool-ness as klog's.
func TestSameFlagsAsKlog(t *testing.T) {
	want := klogFlags()
	var s Flags
	got := pflag.NewFlagSet("front", pflag.ContinueOnError)
	s.Add(got)
	n := 0
	want.VisitAll(func(w *pflag.Flag) {
		n++
		g := got.Lookup(w.Name)
		if g == nil {
			t.Errorf("--%s missing", w.Name)
			return
		}
		if g.Value.Type() != w.Value.Type() {
			t.Errorf("--%s: type %s, klog's %s", w.Name, g.Value.Type(), w.Value.Type())
		}
		if (g.NoOptDefVal != "") != (w.NoOptDefVal != "") || g.Shorthand != w.Shorthand {
			t.Errorf("--%s: NoOptDefVal %q shorthand %q, klog's %q %q", w.Name, g.NoOptDefVal, g.Shorthand, w.NoOptDefVal, w.Shorthand)
		}
	})
	count := 0
	got.VisitAll(func(*pflag.Flag) { count++ })
	if count != n {
		t.Errorf("%d flags, klog has %d", count, n)
	}
}

// Every value is accepted or refused as klog accepts or refuses it.
func TestSameSyntaxAsKlog(t *testing.T) {
	values := map[string][]string{
		"v":                        {"0", "1", "10", "-1", "2147483647", "2147483648", "0x1", "1.5", "", "one", "+3", "01"},
		"vmodule":                  {"", "get_token=1", "a=1,b=2", "a=1,", ",", "a", "a=", "=1", "a=b", "a=-1", "a=0", "a=1=2", "*=3", "foo/*=2"},
		"stderrthreshold":          {"INFO", "info", "Warning", "ERROR", "FATAL", "0", "3", "7", "-1", "", "debug", "0x1"},
		"alsologtostderrthreshold": {"INFO", "warning", "2", "x"},
		"log_backtrace_at":         {"", "get_token.go:51", "file.go:0", "file.go:-1", "file:1", "a.go:b", "a.go:1:2", ":1", "x.y:12"},
		"log_file_max_size":        {"0", "1800", "0x10", "-1", "1.5", "", "18446744073709551616"},
		"logtostderr":              {"true", "false", "1", "0", "t", "F", "yes", ""},
		"skip_headers":             {"true", "TRUE", "nope"},
	}
	for name, vs := range values {
		for _, v := range vs {
			want := klogFlags().Parse([]string{"--" + name + "=" + v})
			var s Flags
			f := pflag.NewFlagSet("front", pflag.ContinueOnError)
			s.Add(f)
			got := f.Parse([]string{"--" + name + "=" + v})
			if (got == nil) != (want == nil) {
				t.Errorf("--%s=%q: error %v, klog's %v", name, v, got, want)
			}
		}
	}
	// The short forms kubeconfigs use.
	for _, args := range [][]string{{"-v1"}, {"-v", "2"}, {"-v=3"}, {"--v", "4"}, {"--logtostderr"}, {"--skip_headers", "--one_output"}} {
		var s Flags
		f := pflag.NewFlagSet("front", pflag.ContinueOnError)
		s.Add(f)
		if err := f.Parse(args); err != nil {
			t.Errorf("%q: %v", args, err)
		}
		if err := klogFlags().Parse(args); err != nil {
			t.Errorf("klog refuses %q: %v", args, err)
		}
	}
}

func TestVerbose(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-v0"}, false},
		{[]string{"-v1"}, true},
		{[]string{"--v=5", "--v=0"}, false},
		{[]string{"--vmodule=get_token=1"}, true},
		{[]string{"--vmodule=get_token=0"}, false},
		{[]string{"--vmodule=a=2", "--vmodule="}, false},
		{[]string{"--logtostderr=false", "--log_file=/tmp/x"}, false},
	}
	for _, tt := range tests {
		var s Flags
		f := pflag.NewFlagSet("front", pflag.ContinueOnError)
		s.Add(f)
		if err := f.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if s.Verbose() != tt.want {
			t.Errorf("%q: Verbose() = %v", tt.args, s.Verbose())
		}
	}
}
