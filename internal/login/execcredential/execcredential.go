// Package execcredential speaks client-go's exec credential protocol: it
// reads KUBERNETES_EXEC_INFO and writes the ExecCredential that kubectl
// reads on the plugin's stdout.
//
// The JSON is written by hand rather than with client-go's
// clientauthentication types: linking k8s.io/client-go/pkg/apis/
// clientauthentication/v1 (and apimachinery with it) adds package
// initialisation to every run of the plugin (measured with
// GODEBUG=inittrace=1; see docs/benchmarks.md, "kubectl plugin"), and the
// document is four fields. The tests decode the output with client-go's
// types to keep the two in step.
package execcredential

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// API versions of client.authentication.k8s.io.
const (
	V1      = "client.authentication.k8s.io/v1"
	V1beta1 = "client.authentication.k8s.io/v1beta1"
)

// Info is what kubectl tells the plugin.
type Info struct {
	// APIVersion to answer with: v1, or v1beta1 when kubectl asks for it
	// or says nothing (kubelogin's fallback).
	APIVersion string
	// Interactive is spec.interactive: whether the plugin may prompt. When
	// kubectl says nothing (a person running the plugin by hand), it is true.
	Interactive bool
}

// ReadInfo parses the value of KUBERNETES_EXEC_INFO.
func ReadInfo(env string) (Info, error) {
	if env == "" {
		return Info{APIVersion: V1beta1, Interactive: true}, nil
	}
	var in struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Interactive bool `json:"interactive"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(env), &in); err != nil {
		return Info{}, fmt.Errorf("invalid KUBERNETES_EXEC_INFO: %w", err)
	}
	switch in.APIVersion {
	case V1, V1beta1:
	case "":
		in.APIVersion = V1beta1
	default:
		return Info{}, fmt.Errorf("KUBERNETES_EXEC_INFO asks for apiVersion %q; this plugin speaks %s and %s", in.APIVersion, V1, V1beta1)
	}
	return Info{APIVersion: in.APIVersion, Interactive: in.Spec.Interactive}, nil
}

// Write writes the ExecCredential for token, valid until expiry.
func Write(w io.Writer, info Info, token string, expiry time.Time) error {
	tok, err := json.Marshal(token)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	b := make([]byte, 0, len(tok)+200)
	b = append(b, `{"kind":"ExecCredential","apiVersion":`...)
	b = strconv.AppendQuote(b, info.APIVersion)
	b = append(b, `,"spec":{"interactive":`...)
	b = strconv.AppendBool(b, info.Interactive)
	b = append(b, `},"status":{"expirationTimestamp":"`...)
	b = expiry.UTC().AppendFormat(b, time.RFC3339)
	b = append(b, `","token":`...)
	b = append(b, tok...)
	b = append(b, "}}\n"...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write ExecCredential: %w", err)
	}
	return nil
}
