package cluster

import (
	"strings"
)

// KubeOne's API types live in a module that pulls in much of Kubernetes;
// these mirror the fields of KubeOneCluster (v1beta2/v1beta3) .features
// that gatehouse sets, with the same JSON names.

// KubeOneFeatures is the features: block of a KubeOneCluster manifest.
type KubeOneFeatures struct {
	Features KubeOneFeatureSet `json:"features"`
}

// KubeOneFeatureSet holds the features gatehouse configures.
type KubeOneFeatureSet struct {
	OpenIDConnect   *KubeOneOpenIDConnect   `json:"openidConnect,omitempty"`
	StaticAuditLog  *KubeOneStaticAuditLog  `json:"staticAuditLog,omitempty"`
	WebhookAuditLog *KubeOneWebhookAuditLog `json:"webhookAuditLog,omitempty"`
}

// KubeOneOpenIDConnect is features.openidConnect; KubeOne turns it into
// kube-apiserver's --oidc-* flags.
type KubeOneOpenIDConnect struct {
	Enable bool                       `json:"enable"`
	Config KubeOneOpenIDConnectConfig `json:"config"`
}

// KubeOneOpenIDConnectConfig is features.openidConnect.config.
type KubeOneOpenIDConnectConfig struct {
	IssuerURL      string `json:"issuerUrl"`
	ClientID       string `json:"clientId"`
	UsernameClaim  string `json:"usernameClaim"`
	UsernamePrefix string `json:"usernamePrefix"`
	GroupsClaim    string `json:"groupsClaim"`
	GroupsPrefix   string `json:"groupsPrefix,omitempty"`
	RequiredClaim  string `json:"requiredClaim,omitempty"`
	SigningAlgs    string `json:"signingAlgs"`
	CAFile         string `json:"caFile,omitempty"`
}

// KubeOneStaticAuditLog is features.staticAuditLog (the log file backend).
type KubeOneStaticAuditLog struct {
	Enable bool                        `json:"enable"`
	Config KubeOneStaticAuditLogConfig `json:"config"`
}

// KubeOneStaticAuditLogConfig is features.staticAuditLog.config; paths are
// on the machine running kubeone, which uploads the policy.
type KubeOneStaticAuditLogConfig struct {
	PolicyFilePath string `json:"policyFilePath"`
	LogPath        string `json:"logPath"`
	LogMaxAge      int    `json:"logMaxAge"`
	LogMaxBackup   int    `json:"logMaxBackup"`
	LogMaxSize     int    `json:"logMaxSize"`
}

// KubeOneWebhookAuditLog is features.webhookAuditLog.
type KubeOneWebhookAuditLog struct {
	Enable bool                         `json:"enable"`
	Config KubeOneWebhookAuditLogConfig `json:"config"`
}

// KubeOneWebhookAuditLogConfig is features.webhookAuditLog.config.
type KubeOneWebhookAuditLogConfig struct {
	PolicyFilePath string `json:"policyFilePath"`
	ConfigFilePath string `json:"configFilePath"`
}

// KubeOne builds the features block. KubeOne's openidConnect feature sets
// the legacy --oidc-* flags; its caFile is a path on the control-plane
// nodes (issuer-ca.pem copied to NodeDir).
func (c *Config) KubeOne(hasIssuerCA bool) KubeOneFeatures {
	oidc := &KubeOneOpenIDConnect{Enable: true, Config: KubeOneOpenIDConnectConfig{
		IssuerURL:      c.Issuer.URL,
		ClientID:       c.Issuer.ClientID,
		UsernameClaim:  c.Claims.Username.Claim,
		UsernamePrefix: legacyPrefix(c.UsernamePrefix()),
		GroupsClaim:    c.Claims.Groups.Claim,
		GroupsPrefix:   c.GroupsPrefix(),
		SigningAlgs:    strings.Join(c.Issuer.SigningAlgs, ","),
	}}
	if hasIssuerCA {
		oidc.Config.CAFile = c.NodePath(FileIssuerCA)
	}
	f := KubeOneFeatures{Features: KubeOneFeatureSet{OpenIDConnect: oidc}}
	if l := c.Audit.Log; !l.Disabled {
		f.Features.StaticAuditLog = &KubeOneStaticAuditLog{Enable: true, Config: KubeOneStaticAuditLogConfig{
			PolicyFilePath: FileAuditPolicy,
			LogPath:        l.Path,
			LogMaxAge:      l.MaxAge,
			LogMaxBackup:   l.MaxBackup,
			LogMaxSize:     l.MaxSize,
		}}
	}
	if !c.Audit.Webhook.Disabled {
		f.Features.WebhookAuditLog = &KubeOneWebhookAuditLog{Enable: true, Config: KubeOneWebhookAuditLogConfig{
			PolicyFilePath: FileAuditPolicy,
			ConfigFilePath: FileAuditWebhook,
		}}
	}
	return f
}

// The kubeadm types live in k8s.io/kubernetes; these mirror the fields of
// kubeadm.k8s.io/v1beta4 ClusterConfiguration.apiServer that gatehouse
// sets (the e2e module decodes them strictly with the real types).

// KubeadmClusterConfiguration is a ClusterConfiguration patch.
type KubeadmClusterConfiguration struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	APIServer  KubeadmAPIServer `json:"apiServer"`
}

// KubeadmAPIServer is ClusterConfiguration.apiServer.
type KubeadmAPIServer struct {
	ExtraArgs    []KubeadmArg           `json:"extraArgs"`
	ExtraVolumes []KubeadmHostPathMount `json:"extraVolumes"`
}

// KubeadmArg is v1beta4's name/value argument.
type KubeadmArg struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// KubeadmHostPathMount is a host folder mounted into kube-apiserver's pod.
type KubeadmHostPathMount struct {
	Name      string `json:"name"`
	HostPath  string `json:"hostPath"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	PathType  string `json:"pathType,omitempty"`
}

// Kubeadm builds the ClusterConfiguration patch: the authentication flags
// of the configured mode, the audit flags, and the volumes that make
// NodeDir and the audit log folder visible inside the static pod.
func (c *Config) Kubeadm(hasIssuerCA bool) KubeadmClusterConfiguration {
	var flags []Flag
	if c.Authentication == ModeFlags {
		flags = append(flags, c.LegacyOIDCFlags(hasIssuerCA)...)
	} else {
		flags = append(flags, c.StructuredAuthFlags()...)
	}
	flags = append(flags, c.AuditFlags()...)
	api := KubeadmAPIServer{}
	for _, f := range flags {
		api.ExtraArgs = append(api.ExtraArgs, KubeadmArg(f))
	}
	api.ExtraVolumes = append(api.ExtraVolumes, KubeadmHostPathMount{
		Name: "gatehouse", HostPath: c.NodeDir, MountPath: c.NodeDir, ReadOnly: true, PathType: "DirectoryOrCreate",
	})
	if l := c.Audit.Log; !l.Disabled {
		dir := l.Path[:strings.LastIndex(l.Path, "/")]
		if dir == "" {
			dir = "/"
		}
		api.ExtraVolumes = append(api.ExtraVolumes, KubeadmHostPathMount{
			Name: "audit-log", HostPath: dir, MountPath: dir, PathType: "DirectoryOrCreate",
		})
	}
	return KubeadmClusterConfiguration{
		APIVersion: "kubeadm.k8s.io/v1beta4",
		Kind:       "ClusterConfiguration",
		APIServer:  api,
	}
}
