{{/* vim: set filetype=mustache: */}}

{{/*
Chart name, overridable with nameOverride.
*/}}
{{- define "mtls-webhook.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. Truncated to 52 characters so that the
longest suffix used below ("-selfsigned", 11 characters) keeps names within
the 63-character DNS label limit.
*/}}
{{- define "mtls-webhook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
chart label value: name-version.
*/}}
{{- define "mtls-webhook.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: stable for the life of the release.
*/}}
{{- define "mtls-webhook.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mtls-webhook.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{/*
Common labels of every object.
*/}}
{{- define "mtls-webhook.labels" -}}
{{ include "mtls-webhook.selectorLabels" . }}
helm.sh/chart: {{ include "mtls-webhook.chart" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mtls-webhook
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
ServiceAccount name.
*/}}
{{- define "mtls-webhook.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mtls-webhook.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Container image reference: digest wins over tag, tag defaults to appVersion.
*/}}
{{- define "mtls-webhook.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
Object names.
*/}}
{{- define "mtls-webhook.serviceName" -}}
{{- include "mtls-webhook.fullname" . -}}
{{- end -}}
{{- define "mtls-webhook.selfSignedIssuerName" -}}
{{- printf "%s-selfsigned" (include "mtls-webhook.fullname" .) -}}
{{- end -}}
{{- define "mtls-webhook.caName" -}}
{{- printf "%s-ca" (include "mtls-webhook.fullname" .) -}}
{{- end -}}
{{- define "mtls-webhook.servingCertName" -}}
{{- printf "%s-serving" (include "mtls-webhook.fullname" .) -}}
{{- end -}}
{{- define "mtls-webhook.servingSecretName" -}}
{{- printf "%s-tls" (include "mtls-webhook.fullname" .) -}}
{{- end -}}

{{/*
Namespaces never sent to the webhook nor checked by the policy.
*/}}
{{- define "mtls-webhook.excludedNamespaces" -}}
{{- $ns := list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace .Values.certManager.namespace -}}
{{- $ns = concat $ns .Values.mutatingWebhook.excludedNamespaces | uniq -}}
{{- toYaml $ns -}}
{{- end -}}

{{/*
namespaceSelector shared by the MutatingWebhookConfiguration and the
ValidatingAdmissionPolicyBinding: system, cert-manager and release
namespaces, plus namespaces labelled mtls.demo/injection=disabled.
*/}}
{{- define "mtls-webhook.namespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- include "mtls-webhook.excludedNamespaces" . | nindent 6 }}
  - key: mtls.demo/injection
    operator: NotIn
    values:
      - disabled
{{- end -}}

{{/*
Input checks the schema cannot express.
*/}}
{{- define "mtls-webhook.validate" -}}
{{- if and (eq .Values.config.defaultIssuerKind "ClusterIssuer") (not .Values.config.allowedIssuers) -}}
{{- fail "config.defaultIssuerKind is ClusterIssuer, but config.allowedIssuers is empty (which allows no ClusterIssuer): every pod relying on the default would be refused, so the webhook refuses to start; add \"ClusterIssuer/<name>\" to config.allowedIssuers" -}}
{{- end -}}
{{- if and (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) -}}
{{- fail "serviceAccount.name is required when serviceAccount.create is false" -}}
{{- end -}}
{{- if eq (int .Values.config.port) (int .Values.config.healthPort) -}}
{{- fail "config.port and config.healthPort must differ" -}}
{{- end -}}
{{- if or (eq (int .Values.config.port) (int .Values.config.metricsPort)) (eq (int .Values.config.healthPort) (int .Values.config.metricsPort)) -}}
{{- fail "config.metricsPort must differ from config.port and config.healthPort" -}}
{{- end -}}
{{- end -}}
