{{/* Chart name, truncated to the DNS label limit. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gatehouse.secretName" -}}
{{- default (printf "%s-config" (include "gatehouse.fullname" .)) .Values.existingSecret }}
{{- end }}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The storage type: the config's, as the values say. */}}
{{- define "gatehouse.storageType" -}}
{{- (.Values.config.storage | default dict).type | default "sqlite3" }}
{{- end }}

{{/*
The configuration as rendered into the Secret: .Values.config with the
listen addresses and the SQLite file filled in when absent.
*/}}
{{- define "gatehouse.config" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $web := $cfg.web | default dict }}
{{- if and (not $web.http) (not $web.https) }}
{{- $_ := set $web "http" (printf "0.0.0.0:%d" (int .Values.ports.http)) }}
{{- end }}
{{- /* Behind the Ingress, the client's address is in X-Forwarded-For. */}}
{{- if and .Values.ingress.enabled .Values.ingress.trustedProxies (not $web.clientRemoteIP) }}
{{- $_ := set $web "clientRemoteIP" (dict "header" "X-Forwarded-For" "trustedProxies" .Values.ingress.trustedProxies) }}
{{- end }}
{{- $_ := set $cfg "web" $web }}
{{- $tel := $cfg.telemetry | default dict }}
{{- if not $tel.http }}
{{- $_ := set $tel "http" (printf "0.0.0.0:%d" (int .Values.ports.telemetry)) }}
{{- end }}
{{- $_ := set $cfg "telemetry" $tel }}
{{- $st := $cfg.storage | default dict }}
{{- if eq (include "gatehouse.storageType" .) "sqlite3" }}
{{- $sc := $st.config | default dict }}
{{- if not $sc.file }}
{{- $_ := set $sc "file" "/var/lib/gatehouse/gatehouse.db" }}
{{- end }}
{{- $_ := set $st "config" $sc }}
{{- $_ := set $st "type" "sqlite3" }}
{{- end }}
{{- if and (eq (include "gatehouse.storageType" .) "kubernetes") (not $st.config) }}
{{- $_ := set $st "config" (dict "inCluster" true) }}
{{- end }}
{{- $_ := set $cfg "storage" $st }}
{{- include "gatehouse.auditConfig" (dict "cfg" $cfg "root" .) }}
{{- toYaml $cfg }}
{{- end }}

{{/* The port part of a listen address ("0.0.0.0:5556", ":5556"). */}}
{{- define "gatehouse.addrPort" -}}
{{- regexReplaceAll "^.*:" . "" }}
{{- end }}

{{/*
Checks that stop the render with a reason: several replicas on SQLite, and
listen addresses that disagree with the container ports.
*/}}
{{- define "gatehouse.validate" -}}
{{- $type := include "gatehouse.storageType" . }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownDelaySeconds) 15) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdownDelaySeconds (%d) + 15 s for requests in flight to finish; Kubernetes kills the pod when it runs out" (int .Values.terminationGracePeriodSeconds) (int .Values.shutdownDelaySeconds)) }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (ne $type "postgres") (ne $type "kubernetes") }}
{{- fail (printf "replicaCount is %d but config.storage.type is %q: SQLite is one file on one pod's volume, so only one replica can use it. Set config.storage.type: postgres (with storage.config for your PostgreSQL) or kubernetes (custom resources, no database) to run several replicas, or set replicaCount: 1." (int .Values.replicaCount) $type) }}
{{- end }}
{{- if not .Values.existingSecret }}
{{- $_ := include "gatehouse.issuer" . }}
{{- $cfg := include "gatehouse.config" . | fromYaml }}
{{- if $cfg.web.http }}
{{- if ne (include "gatehouse.addrPort" $cfg.web.http) (toString .Values.ports.http) }}
{{- fail (printf "config.web.http is %q but ports.http is %v: make them agree" $cfg.web.http .Values.ports.http) }}
{{- end }}
{{- end }}
{{- if $cfg.web.https }}
{{- if ne (include "gatehouse.addrPort" $cfg.web.https) (toString .Values.ports.https) }}
{{- fail (printf "config.web.https is %q but ports.https is %v: make them agree" $cfg.web.https .Values.ports.https) }}
{{- end }}
{{- end }}
{{- if ne (include "gatehouse.addrPort" $cfg.telemetry.http) (toString .Values.ports.telemetry) }}
{{- fail (printf "config.telemetry.http is %q but ports.telemetry is %v: make them agree (the probes use it)" $cfg.telemetry.http .Values.ports.telemetry) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether the pod serves plain HTTP / TLS on the web ports. */}}
{{- define "gatehouse.servesHTTP" -}}
{{- if .Values.existingSecret }}true{{- else }}{{- $cfg := include "gatehouse.config" . | fromYaml }}{{- if $cfg.web.http }}true{{- end }}{{- end }}
{{- end }}
{{- define "gatehouse.servesHTTPS" -}}
{{- if .Values.ports.httpsEnabled }}true{{- else if not .Values.existingSecret }}{{- if (.Values.config.web | default dict).https }}true{{- end }}{{- end }}
{{- end }}

{{/* The web port the Ingress and Service target by name. */}}
{{- define "gatehouse.webPortName" -}}
{{- if include "gatehouse.servesHTTP" . }}http{{- else }}https{{- end }}
{{- end }}

{{/*
The issuer URL; stops the render with a reason when it is missing (there
is no placeholder: a wrong issuer makes every token fail).
*/}}
{{- define "gatehouse.issuer" -}}
{{- $issuer := (.Values.config | default dict).issuer }}
{{- if not $issuer }}
{{- if .Values.existingSecret }}
{{- fail "ingress.host is required with existingSecret (the chart cannot read the issuer from the Secret); set ingress.host to the issuer's host" }}
{{- end }}
{{- fail "config.issuer is required: the URL clients and kube-apiserver use, e.g. --set config.issuer=https://login.example.com/dex (the Ingress host is taken from it)" }}
{{- end }}
{{- if not (kindIs "string" $issuer) }}
{{- fail (printf "config.issuer must be a URL string such as https://login.example.com/dex, not %v" $issuer) }}
{{- end }}
{{- $issuer }}
{{- end }}

{{- define "gatehouse.ingressHost" -}}
{{- if .Values.ingress.host }}
{{- .Values.ingress.host }}
{{- else }}
{{- (urlParse (include "gatehouse.issuer" .)).hostname }}
{{- end }}
{{- end }}

{{/*
The Ingress annotations: ingress.annotations plus cert-manager's
cluster-issuer annotation from ingress.tls.certManager.clusterIssuer. The
same key given both ways with two values stops the render; with one value
it is written once (a key written twice is invalid YAML).
*/}}
{{- define "gatehouse.ingressAnnotations" -}}
{{- $cm := .Values.ingress.tls.certManager }}
{{- $a := deepCopy (.Values.ingress.annotations | default dict) }}
{{- if and .Values.ingress.tls.enabled $cm.clusterIssuer (not $cm.certificate) }}
{{- $key := "cert-manager.io/cluster-issuer" }}
{{- if and (hasKey $a $key) (ne (toString (get $a $key)) (toString $cm.clusterIssuer)) }}
{{- fail (printf "ingress.annotations sets %s to %q but ingress.tls.certManager.clusterIssuer is %q: keep one of them" $key (toString (get $a $key)) (toString $cm.clusterIssuer)) }}
{{- end }}
{{- $_ := set $a $key $cm.clusterIssuer }}
{{- end }}
{{- if $a }}
{{- toYaml $a }}
{{- end }}
{{- end }}

{{- define "gatehouse.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "gatehouse.fullname" .)) .Values.ingress.tls.secretName }}
{{- end }}

{{/* Several replicas share the state: rolling updates. */}}
{{- define "gatehouse.sharedStorage" -}}
{{- if has (include "gatehouse.storageType" .) (list "postgres" "kubernetes") }}true{{- end }}
{{- end }}

{{/* A PersistentVolumeClaim holds the data only for SQLite. */}}
{{- define "gatehouse.usesClaim" -}}
{{- if and .Values.persistence.enabled (eq (include "gatehouse.storageType" .) "sqlite3") }}true{{- end }}
{{- end }}
