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
{{- $repo := include "mtls-webhook.withRegistry" (dict "ref" .Values.image.repository "registry" .Values.imageRegistry) -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
withRegistry puts an image reference under imageRegistry: the reference's
own registry host (its first path element when that holds a "." or ":" or
is "localhost") is replaced; a reference without one (docker.io short form)
gets the registry prepended. An empty registry leaves the reference alone.
Usage: include "mtls-webhook.withRegistry" (dict "ref" "ghcr.io/a/b:1" "registry" "r.example.com")
*/}}
{{- define "mtls-webhook.withRegistry" -}}
{{- $ref := .ref -}}
{{- if .registry -}}
{{- $parts := splitList "/" $ref -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $ref = join "/" (rest $parts) -}}
{{- end -}}
{{- $ref = printf "%s/%s" (trimSuffix "/" .registry) $ref -}}
{{- end -}}
{{- $ref -}}
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
{{- with .Values.extraNamespaceSelectorExpressions }}
{{ toYaml . | indent 2 }}
{{- end }}
{{- end -}}

{{/*
Input checks the schema cannot express.
*/}}
{{- define "mtls-webhook.validate" -}}
{{- if eq .Release.Namespace "default" -}}
{{- fail "the release namespace is \"default\": mtls-webhook never injects pods in its own namespace (so that it can always start), which would leave every opted-in pod in default without mTLS; install into a namespace of its own: helm install ... --namespace mtls-system --create-namespace" -}}
{{- end -}}
{{- if and (has "Deny" .Values.validatingAdmissionPolicy.validationActions) (has "Warn" .Values.validatingAdmissionPolicy.validationActions) -}}
{{- fail "validatingAdmissionPolicy.validationActions has both Deny and Warn: the API server allows one of them (Deny refuses, Warn only warns), optionally with Audit" -}}
{{- end -}}
{{- if and .Values.hostNetwork (eq (int .Values.config.port) 10250) -}}
{{- fail "hostNetwork is true and config.port is 10250: on the node's network the kubelet already listens on 10250; set config.port to a free port such as 10260 (and open it from the control plane)" -}}
{{- end -}}
{{- if and (gt (int .Values.preStopSleepSeconds) 0) (le (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds)) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds (%v): the kubelet kills the webhook when the grace period ends, so it would never shut down cleanly" .Values.terminationGracePeriodSeconds .Values.preStopSleepSeconds) -}}
{{- end -}}
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
