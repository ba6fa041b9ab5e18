package conformance

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

var timeType = reflect.TypeFor[time.Time]()

// mustEqual fails t with every difference between want and got. Times are
// compared with Equal and must come back in UTC; slices must match in
// length, order and nil-ness (the canonical form returns nil for empty).
func mustEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	var diffs []string
	diff(&diffs, what, reflect.ValueOf(got), reflect.ValueOf(want))
	for _, d := range diffs {
		t.Error(d)
	}
	if len(diffs) > 0 {
		t.FailNow()
	}
}

func diff(out *[]string, path string, got, want reflect.Value) {
	if got.Type() != want.Type() {
		*out = append(*out, fmt.Sprintf("%s: type %s, want %s", path, got.Type(), want.Type()))
		return
	}
	if got.Type() == timeType {
		g, w := got.Interface().(time.Time), want.Interface().(time.Time)
		if !g.Equal(w) {
			*out = append(*out, fmt.Sprintf("%s: %s, want %s", path, g.Format(time.RFC3339Nano), w.Format(time.RFC3339Nano)))
		} else if !g.IsZero() && g.Location() != time.UTC {
			*out = append(*out, fmt.Sprintf("%s: location %s, want UTC", path, g.Location()))
		}
		return
	}
	switch got.Kind() {
	case reflect.Struct:
		for i := range got.NumField() {
			diff(out, path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i))
		}
	case reflect.Slice:
		if got.IsNil() != want.IsNil() {
			*out = append(*out, fmt.Sprintf("%s: nil=%v (%#v), want nil=%v (%#v)", path, got.IsNil(), got.Interface(), want.IsNil(), want.Interface()))
			return
		}
		if got.Len() != want.Len() {
			*out = append(*out, fmt.Sprintf("%s: %#v, want %#v", path, got.Interface(), want.Interface()))
			return
		}
		for i := range got.Len() {
			diff(out, fmt.Sprintf("%s[%d]", path, i), got.Index(i), want.Index(i))
		}
	default:
		if !reflect.DeepEqual(got.Interface(), want.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: %#v, want %#v", path, got.Interface(), want.Interface()))
		}
	}
}
