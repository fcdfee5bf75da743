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
Namespaces never sent to the injecting webhooks nor checked by the
require-csi policy (the guard's are guardExcludedNamespaces).
*/}}
{{- define "mtls-webhook.excludedNamespaces" -}}
{{- $ns := list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace .Values.certManager.namespace (include "mtls-webhook.csiDriverNamespace" .) -}}
{{- $ns = concat $ns .Values.mutatingWebhook.excludedNamespaces | uniq -}}
{{- toYaml $ns -}}
{{- end -}}

{{/*
namespaceSelector of injection: the MutatingWebhookConfiguration, the
workloads webhook and the require-csi policy's binding. System,
cert-manager and release namespaces, namespaces labelled
mtls.demo/injection=disabled, and extraNamespaceSelectorExpressions. The
guard has a selector of its own (guardNamespaceSelector).
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
csiDriverNamespace is where the cert-manager csi-driver runs:
certManager.csiDriverNamespace, by default certManager.namespace.
*/}}
{{- define "mtls-webhook.csiDriverNamespace" -}}
{{- default .Values.certManager.namespace .Values.certManager.csiDriverNamespace -}}
{{- end -}}

{{/*
Namespaces the guard (the csi-guard policy and verify.mtls.demo) leaves
alone: only those where cert-manager and the csi-driver run, which must be
able to start whatever happens to this chart, and the ones an admin lists in
guard.excludedNamespaces. Nothing of the injection's scope is reused here:
opting a namespace or a pod out of injection must not opt it out of the
guard.
*/}}
{{- define "mtls-webhook.guardExcludedNamespaces" -}}
{{- $ns := list .Values.certManager.namespace (include "mtls-webhook.csiDriverNamespace" .) -}}
{{- $ns = concat $ns .Values.guard.excludedNamespaces | uniq -}}
{{- toYaml $ns -}}
{{- end -}}

{{/*
guardNamespaceSelector scopes the csi-guard policy's binding and the
verify.mtls.demo webhook. It selects by kubernetes.io/metadata.name only,
which the API server sets to the namespace's name and nobody can change, so
no label a namespace owner controls (mtls.demo/injection=disabled,
extraNamespaceSelectorExpressions) turns the guard off.
*/}}
{{- define "mtls-webhook.guardNamespaceSelector" -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values:
      {{- include "mtls-webhook.guardExcludedNamespaces" . | nindent 6 }}
{{- end -}}

{{/*
celExpand is the CEL expression for the string expression given, with the
csi-driver's templates replaced as the driver will replace them for this
pod: ${POD_NAMESPACE} by the request's namespace (object.metadata.namespace
may be empty on create), ${SERVICE_ACCOUNT_NAME}, ${POD_NAME} and ${POD_UID}
by the pod's (the API server has named the pod and defaulted its service
account before any validating admission). The driver expands with
os.Expand, so the forms without braces are replaced too, $POD_NAMESPACE
before $POD_NAME, of which it is an extension. What is left of a "$" after
this is no template the driver knows (it then refuses the volume, or eats a
lone "${"): every check on the result allows no "$" at all.
Usage: include "mtls-webhook.celExpand" "variables.dns"
*/}}
{{- define "mtls-webhook.celExpand" -}}
{{ . }}.replace('${POD_NAMESPACE}', request.namespace).replace('${SERVICE_ACCOUNT_NAME}', variables.sa).replace('${POD_NAME}', variables.podName).replace('${POD_UID}', variables.podUID).replace('$POD_NAMESPACE', request.namespace).replace('$SERVICE_ACCOUNT_NAME', variables.sa).replace('$POD_NAME', variables.podName).replace('$POD_UID', variables.podUID)
{{- end -}}

{{/*
celShow is the CEL expression for the string expression given, cut to 64
characters and on one line, for messageExpression: a refusal quotes what
the pod sent, bounded whatever its size.
*/}}
{{- define "mtls-webhook.celShow" -}}
'"' + ({{ . }}.size() > 64 ? {{ . }}.substring(0, 64) + '...' : {{ . }}).replace('\n', ' ').replace('\r', ' ') + '"'
{{- end -}}

{{/*
celIssuerAllowed is the CEL condition that the volume's issuer
(variables.issuerKind, issuerGroup, issuerName) is one config.allowedIssuers
allows, "Issuer/*" when it is empty, as the webhook reads them: "Kind/name"
(group cert-manager.io) or "Kind.group/name". A name glob of lower-case
letters, digits, ".", "-", "*" and "?" is matched as the webhook's
path.Match does (within an issuer name "*" matches any run, "?" one
character); a glob with other characters ([a-z] classes, escapes) is left
to verify.mtls.demo and only its kind and group are checked here.
*/}}
{{- define "mtls-webhook.celIssuerAllowed" -}}
{{- $conds := list -}}
{{- range (.Values.config.allowedIssuers | default (list "Issuer/*")) -}}
{{- $p := trim . -}}
{{- if $p -}}
{{- $parts := splitn "/" 2 $p -}}
{{- $kg := splitn "." 2 $parts._0 -}}
{{- $name := default "" $parts._1 -}}
{{- $c := printf "(variables.issuerKind == '%s' && variables.issuerGroup == '%s'" $kg._0 (default "cert-manager.io" $kg._1) -}}
{{- if and (regexMatch "^[-a-z0-9.*?]+$" $name) (ne $name "*") -}}
{{- $re := regexQuoteMeta $name | replace "\\*" "[^/]*" | replace "\\?" "[^/]" -}}
{{- $c = printf "%s && variables.issuerName.matches(r'^%s$')" $c $re -}}
{{- end -}}
{{- $conds = append $conds (printf "%s)" $c) -}}
{{- end -}}
{{- end -}}
{{- if not $conds -}}
{{- $conds = list "(variables.issuerKind == 'Issuer' && variables.issuerGroup == 'cert-manager.io')" -}}
{{- end -}}
({{ join " || " $conds }})
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
