package proxy

import (
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
)

// schemaGV is the version Status bodies are written in.
var schemaGV = schema.GroupVersion{Version: "v1"}

// statusCodecs encode metav1.Status the way kube-apiserver does (JSON,
// YAML or protobuf, as the client's Accept asks).
var statusCodecs = func() runtime.NegotiatedSerializer {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schemaGV)
	return serializer.NewCodecFactory(s).WithoutConversion()
}()

func errServiceUnavailable(err error) error {
	return apierrors.NewServiceUnavailable("the API server behind gatehouse-proxy is unreachable: " + err.Error())
}
