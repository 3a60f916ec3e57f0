{{/*
Names, labels and image references shared by every template.
*/}}

{{/* The release's base name: the release name, or fullnameOverride. */}}
{{- define "rollgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The controller's name (Deployment, Service, ServiceAccount, ClusterRole). */}}
{{- define "rollgate.controller.fullname" -}}
{{- printf "%s-controller" (include "rollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The analysis service's name (Deployment, Service, ServiceAccount). */}}
{{- define "rollgate.analysis.fullname" -}}
{{- printf "%s-analysis" (include "rollgate.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The controller's ServiceAccount. */}}
{{- define "rollgate.controller.serviceAccountName" -}}
{{- default (include "rollgate.controller.fullname" .) .Values.controller.serviceAccount.name -}}
{{- end -}}

{{/* The analysis service's ServiceAccount. */}}
{{- define "rollgate.analysis.serviceAccountName" -}}
{{- default (include "rollgate.analysis.fullname" .) .Values.analysis.serviceAccount.name -}}
{{- end -}}

{{/* The leader Lease's namespace: the release namespace unless set. */}}
{{- define "rollgate.leaseNamespace" -}}
{{- default .Release.Namespace .Values.controller.leaderElection.leaseNamespace -}}
{{- end -}}

{{/* The leader Lease's name. */}}
{{- define "rollgate.leaseName" -}}
{{- default (include "rollgate.controller.fullname" .) .Values.controller.leaderElection.leaseName -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "rollgate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rollgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: call with (dict "root" $ "component" "controller"). */}}
{{- define "rollgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
An image reference: repository@digest when a digest is given (the recommended form: rollgate
itself only runs digest-pinned images), else repository:tag, the tag defaulting to the chart's
appVersion. Call with (dict "image" .Values.controller.image "root" $).
*/}}
{{- define "rollgate.image" -}}
{{- $repository := required "image.repository is required" .image.repository -}}
{{- if .image.digest -}}
{{- if not (hasPrefix "sha256:" .image.digest) -}}
{{- fail (printf "image.digest %q must start with sha256:" .image.digest) -}}
{{- end -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The URL the controller reaches the analysis service at. */}}
{{- define "rollgate.analysisAddr" -}}
{{- if .Values.controller.analysisAddr -}}
{{- .Values.controller.analysisAddr -}}
{{- else if .Values.analysis.enabled -}}
{{- printf "http://%s.%s.svc:%d" (include "rollgate.analysis.fullname" .) .Release.Namespace (int .Values.analysis.service.grpcPort) -}}
{{- end -}}
{{- end -}}

{{/*
The read rules every rollgate role starts from: everything in the rollgate.io group, read only.
*/}}
{{- define "rollgate.readRules" -}}
- apiGroups: ["rollgate.io"]
  resources:
    - rollouts
    - rollouts/status
    - rollouts/scale
    - analysisruns
    - analysisruns/status
    - analysistemplates
    - clusteranalysistemplates
    - approvals
    - auditrecords
    - imagepolicies
  verbs: ["get", "list", "watch"]
{{- end -}}
