{{/*
The audit sink's layout (docs/audit.md, "Running the sink on its own").
*/}}

{{/* Whether the audit trail is on: config.audit.enabled, or with an
existingSecret (which the chart cannot read) auditSink.enabled. */}}
{{- define "gatehouse.auditOn" -}}
{{- if .Values.existingSecret }}{{ if .Values.auditSink.enabled }}true{{ end }}
{{- else if ((.Values.config | default dict).audit | default dict).enabled }}true{{ end }}
{{- end }}

{{/* Whether the sink runs in its own Deployment. */}}
{{- define "gatehouse.auditSplit" -}}
{{- if and (include "gatehouse.auditOn" .) (eq .Values.auditSink.layout "split") }}true{{ end }}
{{- end }}

{{- define "gatehouse.auditSinkName" -}}
{{- printf "%s-audit-sink" (include "gatehouse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.auditSinkInternalName" -}}
{{- printf "%s-audit-sink-internal" (include "gatehouse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The sink pods' labels: their own name, so that the issuer's Service,
PodDisruptionBudget and NetworkPolicy (which select the issuer's name)
never pick them. */}}
{{- define "gatehouse.auditSinkSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-audit-sink" (include "gatehouse.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: audit-sink
{{- end }}

{{- define "gatehouse.auditSinkLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "gatehouse.auditSinkSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The audit store's type: config.audit.storage.type, else the main
storage's. */}}
{{- define "gatehouse.auditStorageType" -}}
{{- $a := (.Values.config | default dict).audit | default dict }}
{{- ($a.storage | default dict).type | default (include "gatehouse.storageType" .) }}
{{- end }}

{{/*
gatehouse.auditConfig adjusts the rendered config (a dict, changed in
place) for the split layout: gatehouse serve leaves the webhook to the
sink's process (audit.webhook.separate). The sink's pod mounts its own
volume at /var/lib/gatehouse, so a SQLite audit store in its default place
(audit.db next to gatehouse.db) and the forwarding queues are on it.
*/}}
{{- define "gatehouse.auditConfig" -}}
{{- $cfg := .cfg }}
{{- if include "gatehouse.auditSplit" .root }}
{{- $a := $cfg.audit }}
{{- $w := $a.webhook | default dict }}
{{- $_ := set $w "separate" true }}
{{- $_ := set $a "webhook" $w }}
{{- end }}
{{- end }}

{{/*
The sink's memory, from its in-flight byte budget B
(config.audit.webhook.maxInFlightBytes, default 128 MiB or maxBodyBytes if
larger), in MiB, as docs/audit.md derives it:
  GOMEMLIMIT = B + 32 (the Go runtime and the idle heap)
  limit      = GOMEMLIMIT + store + 32 (margin)
store: SQLite 160 (its page caches and the program's mapped code);
PostgreSQL 48.
*/}}
{{- define "gatehouse.auditSinkBudgetMiB" -}}
{{- $w := (((.Values.config | default dict).audit | default dict).webhook | default dict) }}
{{- $body := int64 ($w.maxBodyBytes | default 67108864) }}
{{- $b := int64 ($w.maxInFlightBytes | default (max 134217728 $body)) }}
{{- div (add $b 1048575) 1048576 }}
{{- end }}

{{- define "gatehouse.auditSinkGoLimitMiB" -}}
{{- add (include "gatehouse.auditSinkBudgetMiB" . | int64) 32 }}
{{- end }}

{{- define "gatehouse.auditSinkMemoryMiB" -}}
{{- $store := ternary 160 48 (eq (include "gatehouse.auditStorageType" .) "sqlite3") }}
{{- add (include "gatehouse.auditSinkGoLimitMiB" . | int64) $store 32 }}
{{- end }}

{{/* The split sink's resources: auditSink.resources, else computed. */}}
{{- define "gatehouse.auditSinkResources" -}}
{{- if .Values.auditSink.resources }}
{{- toYaml .Values.auditSink.resources }}
{{- else }}
{{- $mem := printf "%sMi" (include "gatehouse.auditSinkMemoryMiB" .) }}
requests:
  cpu: 100m
  memory: {{ $mem }}
limits:
  memory: {{ $mem }}
{{- end }}
{{- end }}

{{/* Checks of the split layout. */}}
{{- define "gatehouse.auditValidate" -}}
{{- if include "gatehouse.auditSplit" . }}
{{- if and (gt (int .Values.auditSink.replicaCount) 1) (ne (include "gatehouse.auditStorageType" .) "postgres") }}
{{- fail (printf "auditSink.replicaCount is %d but the audit store is %s: SQLite is one file on one pod's volume. Keep auditSink.replicaCount: 1, or put config.audit.storage in PostgreSQL." (int .Values.auditSink.replicaCount) (include "gatehouse.auditStorageType" .)) }}
{{- end }}
{{- end }}
{{- end }}
