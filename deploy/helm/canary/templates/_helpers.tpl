{{/* The name in labels: "canary" unless nameOverride. */}}
{{- define "canary.name" -}}
{{- default "canary" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Every object's name: <release>-controller (canary-controller for the release "canary", as
deploy/ names them) unless fullnameOverride. */}}
{{- define "canary.fullname" -}}
{{- default (printf "%s-controller" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "canary.serviceAccountName" -}}
{{- default (include "canary.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "canary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "canary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "canary.labels" -}}
{{ include "canary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The controller's rules: deploy/clusterrole.yaml's, read from it (one source). */}}
{{- define "canary.rules" -}}
{{- (.Files.Get "files/clusterrole.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}

{{- define "canary.serviceMonitorServed" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" }}true{{ end -}}
{{- end -}}

{{- define "canary.prometheusRuleServed" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule" }}true{{ end -}}
{{- end -}}
