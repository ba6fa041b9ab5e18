package kubernetes

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Config is Dex's `storage: {type: kubernetes, config: ...}`: where the
// API server is and how gatehouse authenticates to it.
type Config struct {
	// InCluster uses the pod's ServiceAccount (token, CA, namespace), as
	// Dex's inCluster does. It excludes KubeConfigFile.
	InCluster bool
	// KubeConfigFile is a kubeconfig; its current context names the
	// cluster, the user and the namespace ("default" when unset).
	KubeConfigFile string
	// CRDHandling is Dex's crdHandling: "ensure" (the default) creates
	// the custom resource definitions that are missing, "check" fails
	// start-up when one is missing (the chart or an operator installs
	// them).
	CRDHandling string
	// Namespace overrides the namespace of the kubeconfig or the pod.
	Namespace string
	// Logger receives what Open does (default: discard).
	Logger *slog.Logger
}

// CRD handling modes (Dex's crdHandling).
const (
	CRDEnsure = "ensure"
	CRDCheck  = "check"
)

// The pod's ServiceAccount files, as client-go and Dex read them.
const (
	serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount/"
	podNamespaceEnv   = "KUBERNETES_POD_NAMESPACE"
)

// restConfig returns the API server connection and the namespace.
func (c Config) restConfig() (*rest.Config, string, error) {
	switch {
	case c.InCluster && c.KubeConfigFile != "":
		return nil, "", errors.New("inCluster and kubeConfigFile exclude each other: set one of them")
	case !c.InCluster && c.KubeConfigFile == "":
		return nil, "", errors.New("set inCluster: true (in a pod) or kubeConfigFile")
	}
	var (
		rc  *rest.Config
		ns  string
		err error
	)
	if c.InCluster {
		rc, ns, err = inCluster()
	} else {
		rc, ns, err = fromKubeconfig(c.KubeConfigFile)
	}
	if err != nil {
		return nil, "", err
	}
	if c.Namespace != "" {
		ns = c.Namespace
	}
	return rc, ns, nil
}

// inCluster reads the ServiceAccount: client-go's in-cluster config
// (which re-reads the rotating token file) and Dex's namespace rule:
// $KUBERNETES_POD_NAMESPACE, else the token's namespace claim, else the
// namespace file.
func inCluster() (*rest.Config, string, error) {
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, "", fmt.Errorf("inCluster: %w (outside a pod, use kubeConfigFile)", err)
	}
	if ns := os.Getenv(podNamespaceEnv); ns != "" {
		return rc, ns, nil
	}
	token, err := os.ReadFile(serviceAccountDir + "token")
	if err != nil {
		return nil, "", fmt.Errorf("inCluster: %w", err)
	}
	if ns, err := namespaceFromToken(string(token)); err == nil {
		return rc, ns, nil
	}
	data, err := os.ReadFile(serviceAccountDir + "namespace")
	if err != nil {
		return nil, "", fmt.Errorf("inCluster: no namespace in $%s, the ServiceAccount token or %snamespace: %w", podNamespaceEnv, serviceAccountDir, err)
	}
	return rc, strings.TrimSpace(string(data)), nil
}

// namespaceFromToken reads the namespace claim of a ServiceAccount token
// (unverified: it only names where our own objects are).
func namespaceFromToken(token string) (string, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Legacy string `json:"kubernetes.io/serviceaccount/namespace"`
		Bound  struct {
			Namespace string `json:"namespace"`
		} `json:"kubernetes.io"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	for _, ns := range []string{claims.Bound.Namespace, claims.Legacy} {
		if ns != "" {
			return ns, nil
		}
	}
	return "", errors.New("no namespace claim")
}

// fromKubeconfig reads a kubeconfig with client-go (every auth method it
// knows: certificates, tokens, exec plugins). Like Dex, a kubeconfig
// without current-context but with one context uses that one.
func fromKubeconfig(path string) (*rest.Config, string, error) {
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("kubeConfigFile: %w", err)
	}
	if raw.CurrentContext == "" && len(raw.Contexts) == 1 {
		for name := range raw.Contexts {
			raw.CurrentContext = name
		}
	}
	if raw.CurrentContext == "" {
		return nil, "", fmt.Errorf("kubeConfigFile %s: no current-context (and %d contexts): set current-context", path, len(raw.Contexts))
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, raw.CurrentContext, &clientcmd.ConfigOverrides{}, nil)
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeConfigFile %s: %w", path, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeConfigFile %s: %w", path, err)
	}
	return rc, ns, nil
}
