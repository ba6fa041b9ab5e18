package proxy

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/apis/apiserver/install"
	"k8s.io/apiserver/pkg/apis/apiserver/validation"
	authenticationcel "k8s.io/apiserver/pkg/authentication/cel"
)

var authnCodecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	install.Install(s)
	return serializer.NewCodecFactory(s, serializer.EnableStrict)
}()

// LoadAuthenticationConfig reads an AuthenticationConfiguration
// (apiserver.config.k8s.io/v1, v1beta1 or v1alpha1) the way kube-apiserver
// reads --authentication-config: strict decoding into apiserver's own
// types, then apiserver's own validation (CEL expressions compiled).
func LoadAuthenticationConfig(path string, compiler authenticationcel.Compiler) (*apiserver.AuthenticationConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--authentication-config: %w", err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("--authentication-config %s: the file is empty; write the AuthenticationConfiguration that `gatehouse cluster render` produces (authentication-config.yaml)", path)
	}
	obj, gvk, err := authnCodecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("--authentication-config %s: %w", path, err)
	}
	cfg, ok := obj.(*apiserver.AuthenticationConfiguration)
	if !ok {
		return nil, fmt.Errorf("--authentication-config %s: kind %s is not an AuthenticationConfiguration (apiserver.config.k8s.io/v1)", path, gvk)
	}
	if errs := validation.ValidateAuthenticationConfiguration(compiler, cfg, nil); len(errs) > 0 {
		return nil, fmt.Errorf("--authentication-config %s: %w", path, errs.ToAggregate())
	}
	if len(cfg.JWT) == 0 {
		return nil, fmt.Errorf("--authentication-config %s: jwt: no authenticator; the proxy would refuse every request (add the issuer as `gatehouse cluster render` does)", path)
	}
	if cfg.Anonymous != nil && cfg.Anonymous.Enabled {
		return nil, fmt.Errorf("--authentication-config %s: anonymous.enabled: the proxy never forwards anonymous requests (they would run with the proxy's own rights); remove the anonymous section", path)
	}
	return cfg, nil
}
