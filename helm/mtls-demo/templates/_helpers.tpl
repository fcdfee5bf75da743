{{/* vim: set filetype=mustache: */}}

{{- define "mtls-demo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mtls-demo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Common labels. Call with (dict "ctx" $ "component" "backend").
*/}}
{{- define "mtls-demo.labels" -}}
{{ include "mtls-demo.selectorLabels" . }}
helm.sh/chart: {{ include "mtls-demo.chart" .ctx }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mtls-demo
{{- end -}}

{{- define "mtls-demo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mtls-demo.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mtls-demo.rootCAName" -}}
{{- printf "%s-root-ca" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mtls-demo.clusterIssuerName" -}}
{{- default (printf "%s-%s-selfsigned" .Release.Name .Release.Namespace) .Values.pki.clusterIssuerName | trunc 253 -}}
{{- end -}}

{{/*
SPIFFE ID of the frontend: the backend's default ALLOWED_CLIENTS.
*/}}
{{- define "mtls-demo.frontendSpiffeID" -}}
{{- printf "spiffe://%s/ns/%s/sa/%s" .Values.trustDomain .Release.Namespace .Values.frontend.serviceAccount.name -}}
{{- end -}}

{{- define "mtls-demo.allowedClients" -}}
{{- if .Values.allowedClients -}}
{{- join "," .Values.allowedClients -}}
{{- else -}}
{{- include "mtls-demo.frontendSpiffeID" . -}}
{{- end -}}
{{- end -}}

{{- define "mtls-demo.scheme" -}}
{{- if .Values.useMTLS }}https{{ else }}http{{ end -}}
{{- end -}}

{{/*
Pod template shared by both apps. Call with
(dict "ctx" $ "component" "backend" "app" .Values.backend "env" (list ...)).
*/}}
{{- define "mtls-demo.deployment" -}}
{{- $ctx := .ctx -}}
{{- $app := .app -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .component }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "mtls-demo.labels" . | nindent 4 }}
spec:
  replicas: {{ $app.replicas }}
  selector:
    matchLabels:
      {{- include "mtls-demo.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "mtls-demo.labels" . | nindent 8 }}
      annotations:
        # Read by mtls-webhook: inject a certificate from the demo CA and
        # swap in the reload-capable demo image of this role.
        mtls.demo/enable: "true"
        mtls.demo/issuer: {{ $ctx.Values.pki.issuerName | quote }}
        mtls.demo/app: {{ .component | quote }}
        mtls.demo/use-mtls: {{ $ctx.Values.useMTLS | toString | quote }}
        {{- with $ctx.Values.pki.certDuration }}
        mtls.demo/duration: {{ . | quote }}
        {{- end }}
        {{- with $ctx.Values.pki.certRenewBefore }}
        mtls.demo/renew-before: {{ . | quote }}
        {{- end }}
    spec:
      serviceAccountName: {{ $app.serviceAccount.name }}
      automountServiceAccountToken: false
      {{- with $ctx.Values.podSecurityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ printf "%s:%s" $app.image.repository ($app.image.tag | default $ctx.Chart.AppVersion) | quote }}
          imagePullPolicy: {{ $app.image.pullPolicy }}
          env:
            - name: PORT
              value: {{ $ctx.Values.port | quote }}
            - name: OPS_PORT
              value: {{ $ctx.Values.opsPort | quote }}
            - name: CERT_RELOAD
              value: {{ $ctx.Values.reload | toString | quote }}
            {{- range .env }}
            - name: {{ .name }}
              value: {{ .value | quote }}
            {{- end }}
          ports:
            - name: app
              containerPort: {{ $ctx.Values.port }}
              protocol: TCP
            - name: ops
              containerPort: {{ $ctx.Values.opsPort }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: ops
            periodSeconds: 10
          readinessProbe:
            httpGet:
              path: /healthz
              port: ops
            periodSeconds: 5
          {{- with $ctx.Values.containerSecurityContext }}
          securityContext:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $app.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
{{- end -}}

{{- define "mtls-demo.validate" -}}
{{- if eq (int .Values.port) (int .Values.opsPort) -}}
{{- fail "port and opsPort must differ" -}}
{{- end -}}
{{- if eq .Values.frontend.serviceAccount.name .Values.backend.serviceAccount.name -}}
{{- fail "frontend and backend need distinct service accounts: the backend authorizes the frontend by its SPIFFE ID" -}}
{{- end -}}
{{- if and .Values.ingress.enabled (not .Values.pki.create) -}}
{{- fail "ingress.enabled needs pki.create: the Ingress trusts the demo CA secret" -}}
{{- end -}}
{{- end -}}
