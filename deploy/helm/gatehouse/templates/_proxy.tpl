{{/*
gatehouse proxy (docs/proxy.md): names, labels, the AuthenticationConfiguration
it reads and the checks of its values.
*/}}

{{- define "gatehouse.proxyName" -}}
{{- printf "%s-proxy" (include "gatehouse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The proxy's pods have a name of their own, so that no selector of the
issuer (Service, PodDisruptionBudget, NetworkPolicy) picks them. */}}
{{- define "gatehouse.proxySelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-proxy" (include "gatehouse.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "gatehouse.proxyLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gatehouse.proxySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The proxy's image: proxy.image, else the chart's. */}}
{{- define "gatehouse.proxyImage" -}}
{{- $i := .Values.proxy.image | default dict }}
{{- if $i.digest }}
{{- printf "%s@%s" ($i.repository | default .Values.image.repository) $i.digest }}
{{- else if or $i.repository $i.tag }}
{{- printf "%s:%s" ($i.repository | default .Values.image.repository) ($i.tag | default .Chart.AppVersion) }}
{{- else }}
{{- include "gatehouse.image" . }}
{{- end }}
{{- end }}

{{- define "gatehouse.proxyServiceAccountName" -}}
{{- if .Values.proxy.serviceAccount.create }}
{{- default (include "gatehouse.proxyName" .) .Values.proxy.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.proxy.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gatehouse.proxyConfigMapName" -}}
{{- default (include "gatehouse.proxyName" .) .Values.proxy.existingConfigMap }}
{{- end }}

{{- define "gatehouse.proxyTLSSecretName" -}}
{{- default (printf "%s-tls" (include "gatehouse.proxyName" .)) .Values.proxy.tls.existingSecret }}
{{- end }}

{{/* The cluster's name in the audit trail. */}}
{{- define "gatehouse.proxyClusterName" -}}
{{- default .Release.Name .Values.proxy.clusterName }}
{{- end }}

{{/* The issuer URL the proxy trusts: proxy.cluster.issuer.url, else the
issuer of this release. */}}
{{- define "gatehouse.proxyIssuerURL" -}}
{{- $url := .Values.proxy.cluster.issuer.url }}
{{- if and (not $url) .Values.issuer.enabled }}
{{- $url = (.Values.config | default dict).issuer }}
{{- end }}
{{- if not $url }}
{{- fail "proxy.cluster.issuer.url is required: the issuer URL exactly as in the tokens' iss claim (it defaults to config.issuer only when the issuer is in this release, issuer.enabled)" }}
{{- end }}
{{- if or (not (hasPrefix "https://" $url)) (hasSuffix "/" $url) }}
{{- fail (printf "proxy.cluster.issuer.url %q must be an https URL without a trailing / (the iss claim must match exactly)" $url) }}
{{- end }}
{{- $url }}
{{- end }}

{{/*
The AuthenticationConfiguration (apiserver.config.k8s.io/v1) the proxy reads:
what `gatehouse cluster render` writes for the same issuer and claims keys
(internal/cluster AuthenticationConfiguration; chartcheck's
TestProxyAuthenticationConfigAgrees compares the two).
*/}}
{{- define "gatehouse.proxyAuthenticationConfig" -}}
{{- $c := .Values.proxy.cluster }}
{{- $clientID := $c.issuer.clientID | default "kubernetes" }}
{{- $aud := $c.issuer.audiences | default (list $clientID) }}
{{- $issuer := dict "url" (include "gatehouse.proxyIssuerURL" .) "audiences" $aud }}
{{- if gt (len $aud) 1 }}
{{- $_ := set $issuer "audienceMatchPolicy" "MatchAny" }}
{{- end }}
{{- with $c.issuer.caData }}
{{- $_ := set $issuer "certificateAuthority" . }}
{{- end }}
{{- $u := $c.claims.username | default dict }}
{{- $g := $c.claims.groups | default dict }}
{{- $uclaim := $u.claim | default "preferred_username" }}
{{- $uprefix := ternary "oidc:" (toString $u.prefix) (kindIs "invalid" $u.prefix) }}
{{- $gprefix := ternary "oidc:" (toString $g.prefix) (kindIs "invalid" $g.prefix) }}
{{- range $k, $p := dict "username" $uprefix "groups" $gprefix }}
{{- if hasPrefix "system:" $p }}
{{- fail (printf "proxy.cluster.claims.%s.prefix %q starts with system:, which is reserved for Kubernetes components" $k $p) }}
{{- end }}
{{- if eq $p "-" }}
{{- fail (printf "proxy.cluster.claims.%s.prefix: \"-\" is the legacy flags' way to say no prefix; write \"\"" $k) }}
{{- end }}
{{- end }}
{{- $jwt := dict "issuer" $issuer "claimMappings" (dict
  "username" (dict "claim" $uclaim "prefix" $uprefix)
  "groups" (dict "claim" ($g.claim | default "groups") "prefix" $gprefix)) }}
{{- if eq $uclaim "email" }}
{{- $_ := set $jwt "claimValidationRules" (list (dict "expression" "claims.?email_verified.orValue(false) == true" "message" "the email address is not verified (email_verified must be true)")) }}
{{- end }}
{{- $_ := set $jwt "userValidationRules" (list
  (dict "expression" "!user.username.startsWith('system:')" "message" "username must not start with system: (reserved for Kubernetes components)")
  (dict "expression" "user.groups.all(group, !group.startsWith('system:'))" "message" "groups must not start with system: (reserved for Kubernetes components)")) }}
{{- toYaml (dict "apiVersion" "apiserver.config.k8s.io/v1" "kind" "AuthenticationConfiguration" "jwt" (list $jwt)) }}
{{- end }}

{{/* The audit sink's URL: proxy.audit.url, else, when the issuer and its
audit trail are in this release, the webhook path on the issuer's host (as
`gatehouse cluster render` defaults it); empty: no audit trail. https only:
client-go gives a kubeconfig's token to https servers only, so a plain
http sink would get requests without it. */}}
{{- define "gatehouse.proxyAuditURL" -}}
{{- if .Values.proxy.audit.url }}
{{- if not (hasPrefix "https://" .Values.proxy.audit.url) }}
{{- fail (printf "proxy.audit.url %q must be https: the webhook client sends its token to https servers only" .Values.proxy.audit.url) }}
{{- end }}
{{- .Values.proxy.audit.url }}
{{- else if and .Values.issuer.enabled (include "gatehouse.auditOn" .) }}
{{- if and .Values.existingSecret (not .Values.ingress.host) }}
{{- fail "proxy.audit.url is required with existingSecret and the audit sink: the chart cannot read the issuer's host from the Secret (or set ingress.host)" }}
{{- end }}
{{- $path := (((.Values.config | default dict).audit | default dict).webhook | default dict).path | default "/audit/webhook" }}
{{- $host := .Values.ingress.host }}
{{- if not $host }}
{{- $host = (urlParse (include "gatehouse.issuer" .)).host }}
{{- end }}
{{- printf "https://%s%s" $host $path }}
{{- end }}
{{- end }}

{{/* The webhook kubeconfig the proxy posts its audit events with (the
format `cluster render` writes as audit-webhook.kubeconfig); the token is
a file from proxy.audit.tokenSecret. */}}
{{- define "gatehouse.proxyAuditWebhookConfig" -}}
{{- $cluster := dict "server" (include "gatehouse.proxyAuditURL" .) }}
{{- with .Values.proxy.audit.caData }}
{{- $_ := set $cluster "certificate-authority-data" (b64enc .) }}
{{- end }}
{{- toYaml (dict "apiVersion" "v1" "kind" "Config"
  "clusters" (list (dict "name" "gatehouse-audit-sink" "cluster" $cluster))
  "users" (list (dict "name" "gatehouse-proxy" "user" (dict "tokenFile" "/var/run/gatehouse-proxy/audit-token/token")))
  "contexts" (list (dict "name" "gatehouse-audit" "context" (dict "cluster" "gatehouse-audit-sink" "user" "gatehouse-proxy")))
  "current-context" "gatehouse-audit") }}
{{- end }}

{{/* Checks of the proxy's values. */}}
{{- define "gatehouse.proxyValidate" -}}
{{- if and (not .Values.proxy.tls.existingSecret) (not .Values.proxy.tls.certManager.issuer) }}
{{- fail "the proxy needs a serving certificate: set proxy.tls.existingSecret (a kubernetes.io/tls Secret) or proxy.tls.certManager.issuer (cert-manager issues one for proxy.host)" }}
{{- end }}
{{- if and (not .Values.proxy.host) (or .Values.proxy.ingress.enabled (not .Values.proxy.tls.existingSecret)) }}
{{- fail "proxy.host is required with proxy.ingress.enabled or proxy.tls.certManager: the name in the team kubeconfig's server URL (gatehouse cluster render --proxy https://<host>)" }}
{{- end }}
{{- if and .Values.proxy.ingress.enabled (ne .Values.proxy.service.type "ClusterIP") }}
{{- fail (printf "proxy.ingress.enabled with proxy.service.type %s: set proxy.service.type: ClusterIP (the Ingress is the way in)" .Values.proxy.service.type) }}
{{- end }}
{{- if and (include "gatehouse.proxyAuditURL" .) (not .Values.proxy.audit.tokenSecret.name) }}
{{- fail (printf "proxy.audit.tokenSecret.name is required: the proxy posts its audit events to %s with a bearer token the sink accepts (one of config.audit.webhook's tokens), read from that Secret's key %s" (include "gatehouse.proxyAuditURL" .) .Values.proxy.audit.tokenSecret.key) }}
{{- end }}
{{- end }}

{{/* The proxy's pods as a NetworkPolicy peer list (YAML), for the audit
sink's policy; empty without the proxy. */}}
{{- define "gatehouse.proxyPeers" -}}
{{- if .Values.proxy.enabled }}
- podSelector:
    matchLabels:
      {{- include "gatehouse.proxySelectorLabels" . | nindent 6 }}
{{- else }}
[]
{{- end }}
{{- end }}
