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
An image reference: repository@digest (the default form: rollgate itself only runs
digest-pinned images), or repository:tag when no digest but a tag is given explicitly. With
neither, rendering fails: `make images` writes values-images.yaml with the digests it pushed.
Call with (dict "image" .Values.controller.image "name" "controller" "root" $).
*/}}
{{- define "rollgate.image" -}}
{{- $repository := required (printf "%s.image.repository is required" .name) .image.repository -}}
{{- if .image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" .image.digest) -}}
{{- fail (printf "%s.image.digest %q must be sha256: and 64 hex digits" .name .image.digest) -}}
{{- end -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else if .image.tag -}}
{{- printf "%s:%s" $repository .image.tag -}}
{{- else -}}
{{- fail (printf "%s.image.digest is not set: rollgate's images are pulled by digest. Run `make images REGISTRY=<your registry>` and install with `-f target/images/values-images.yaml`, or set %s.image.digest=sha256:... (or, not recommended, %s.image.tag)" .name .name .name) -}}
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
