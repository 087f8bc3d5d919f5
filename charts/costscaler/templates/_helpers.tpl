{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "costscaler.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, plus the chart name unless the release already holds it. */}}
{{- define "costscaler.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "costscaler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "costscaler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "costscaler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "costscaler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "costscaler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "costscaler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces where the operator never writes Deployments: the control plane's own, the release
namespace (its own Deployment, and the Prometheus token Secret it may reference) and any extra
ones. A JSON list, for `fromJsonArray`.
*/}}
{{- define "costscaler.protectedNamespaces" -}}
{{- $fixed := list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace -}}
{{- concat $fixed .Values.operator.extraProtectedNamespaces | uniq | toJson -}}
{{- end -}}

{{/* Fails the install on a scope that would grant workload writes where they must not be. */}}
{{- define "costscaler.checkScope" -}}
{{- if not .Values.operator.allNamespaces -}}
{{- if empty .Values.operator.namespaces -}}
{{- fail "operator.namespaces must list at least one namespace when operator.allNamespaces is false" -}}
{{- end -}}
{{- $protected := include "costscaler.protectedNamespaces" . | fromJsonArray -}}
{{- range .Values.operator.namespaces -}}
{{- if has . $protected -}}
{{- fail (printf "operator.namespaces lists %q, a protected namespace (%s): the operator never writes Deployments there; serve your workloads' namespaces instead" . (join ", " $protected)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the warm nodes' CapacityBuffers and PodTemplates live: nodes.warmNamespace, else the
first served namespace (default in cluster-wide mode). */}}
{{- define "costscaler.warmNamespace" -}}
{{- if .Values.nodes.warmNamespace -}}
{{- .Values.nodes.warmNamespace -}}
{{- else if and (not .Values.operator.allNamespaces) .Values.operator.namespaces -}}
{{- first .Values.operator.namespaces -}}
{{- else -}}
default
{{- end -}}
{{- end -}}
