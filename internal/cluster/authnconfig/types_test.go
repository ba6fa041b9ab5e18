package authnconfig

import (
	"reflect"
	"testing"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
)

// TestSameAsUpstream walks every struct here and its upstream counterpart
// in k8s.io/apiserver/pkg/apis/apiserver/v1: each field must exist upstream
// under the same name, with the same json tag and the same shape, so that
// a field renamed, retagged or retyped upstream fails here.
func TestSameAsUpstream(t *testing.T) {
	cases := []struct {
		ours, upstream any
	}{
		{AuthenticationConfiguration{}, apiserverv1.AuthenticationConfiguration{}},
		{JWTAuthenticator{}, apiserverv1.JWTAuthenticator{}},
		{Issuer{}, apiserverv1.Issuer{}},
		{ClaimValidationRule{}, apiserverv1.ClaimValidationRule{}},
		{ClaimMappings{}, apiserverv1.ClaimMappings{}},
		{PrefixedClaimOrExpression{}, apiserverv1.PrefixedClaimOrExpression{}},
		{ClaimOrExpression{}, apiserverv1.ClaimOrExpression{}},
		{UserValidationRule{}, apiserverv1.UserValidationRule{}},
	}
	for _, tc := range cases {
		ours, up := reflect.TypeOf(tc.ours), reflect.TypeOf(tc.upstream)
		t.Run(ours.Name(), func(t *testing.T) {
			if ours.Name() != up.Name() {
				t.Errorf("named %s, upstream %s", ours.Name(), up.Name())
			}
			sameShape(t, ours.Name(), ours, up)
		})
	}
	if got, want := string(AudienceMatchPolicyMatchAny), string(apiserverv1.AudienceMatchPolicyMatchAny); got != want {
		t.Errorf("AudienceMatchPolicyMatchAny %q, upstream %q", got, want)
	}
	if APIVersion != apiserverv1.SchemeGroupVersion.String() {
		t.Errorf("APIVersion %q, upstream %q", APIVersion, apiserverv1.SchemeGroupVersion)
	}
}

// sameShape compares ours with upstream: the same kind, and for structs,
// each of our fields present upstream with the same json tag.
func sameShape(t *testing.T, path string, ours, up reflect.Type) {
	t.Helper()
	if ours.Kind() != up.Kind() {
		t.Errorf("%s: kind %s, upstream %s", path, ours.Kind(), up.Kind())
		return
	}
	switch ours.Kind() {
	case reflect.Pointer, reflect.Slice:
		sameShape(t, path+"[]", ours.Elem(), up.Elem())
	case reflect.Struct:
		if ours == up { // shared types such as metav1.TypeMeta
			return
		}
		for i := range ours.NumField() {
			f := ours.Field(i)
			uf, ok := up.FieldByName(f.Name)
			if !ok {
				t.Errorf("%s.%s: not upstream", path, f.Name)
				continue
			}
			if f.Tag.Get("json") != uf.Tag.Get("json") {
				t.Errorf("%s.%s: json tag %q, upstream %q", path, f.Name, f.Tag.Get("json"), uf.Tag.Get("json"))
			}
			if f.Anonymous != uf.Anonymous {
				t.Errorf("%s.%s: embedded %v, upstream %v", path, f.Name, f.Anonymous, uf.Anonymous)
			}
			sameShape(t, path+"."+f.Name, f.Type, uf.Type)
		}
	}
}
