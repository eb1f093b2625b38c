{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "fluxbase.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name: "<release>" when it contains the chart name, else "<release>-fluxbase". */}}
{{- define "fluxbase.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that say which chart and release made an object, not which pods it selects. */}}
{{- define "fluxbase.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fluxbase.labels" -}}
{{ include "fluxbase.commonLabels" . }}
app.kubernetes.io/name: {{ include "fluxbase.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector of one component (api or realtime). Call with (dict "root" $ "component" "api"). */}}
{{- define "fluxbase.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fluxbase.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "fluxbase.secretName" -}}
{{- include "fluxbase.fullname" . -}}
{{- end -}}

{{/* The JWT secret: the value, else the one already installed, else a new random one. */}}
{{- define "fluxbase.jwtSecret" -}}
{{- if .Values.auth.jwtSecret -}}
{{- .Values.auth.jwtSecret -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "fluxbase.secretName" .) -}}
{{- if and $existing $existing.data (index $existing.data "FLUXBASE_JWT_SECRET") -}}
{{- index $existing.data "FLUXBASE_JWT_SECRET" | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fluxbase.databaseUrl" -}}
{{- $d := .Values.database -}}
{{- printf "postgresql://%s:%s@%s:%v/%s?sslmode=%s" (urlquery $d.user) (urlquery $d.password) $d.host $d.port $d.name $d.sslMode -}}
{{- end -}}

{{- define "fluxbase.baseUrl" -}}
{{- if .Values.baseUrl -}}
{{- .Values.baseUrl -}}
{{- else if .Values.ingress.enabled -}}
{{- printf "https://%s" .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
The pod template of one component. Call with (dict "root" $ "component" "api"|"realtime"
"realtime" true|false "resources" <map>).
*/}}
{{- define "fluxbase.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "fluxbase.commonLabels" $root | nindent 4 }}
    {{- include "fluxbase.selectorLabels" (dict "root" $root "component" .component) | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    runAsGroup: 1000
    fsGroup: 1000
    seccompProfile:
      type: RuntimeDefault
  terminationGracePeriodSeconds: 40
  containers:
    - name: fluxbase
      image: "{{ $v.image.repository }}:{{ $v.image.tag | default $root.Chart.AppVersion }}"
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: ["--config", "/etc/fluxbase/fluxbase.yaml", "serve"]
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      env:
        - name: DATABASE_URL
          valueFrom:
            secretKeyRef:
              name: {{ $v.database.existingSecret | default (include "fluxbase.secretName" $root) }}
              key: {{ ternary $v.database.existingSecretKey "DATABASE_URL" (ne $v.database.existingSecret "") }}
        - name: FLUXBASE_JWT_SECRET
          valueFrom:
            secretKeyRef:
              name: {{ $v.auth.existingSecret | default (include "fluxbase.secretName" $root) }}
              key: FLUXBASE_JWT_SECRET
        {{- if eq $v.storage.provider "s3" }}
        - name: FLUXBASE_S3_ACCESS_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "fluxbase.secretName" $root }}
              key: FLUXBASE_S3_ACCESS_KEY
        - name: FLUXBASE_S3_SECRET_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "fluxbase.secretName" $root }}
              key: FLUXBASE_S3_SECRET_KEY
        {{- end }}
        - name: FLUXBASE_REALTIME_ENABLED
          value: {{ .realtime | quote }}
      startupProbe:
        httpGet: {path: /health, port: http}
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        httpGet: {path: /health, port: http}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet: {path: /ready, port: http}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities:
          drop: ["ALL"]
      volumeMounts:
        - name: config
          mountPath: /etc/fluxbase
          readOnly: true
        - name: storage
          mountPath: /var/fluxbase/storage
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: config
      configMap:
        name: {{ include "fluxbase.fullname" $root }}
    - name: storage
      {{- if $v.storage.existingClaim }}
      persistentVolumeClaim:
        claimName: {{ $v.storage.existingClaim }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: tmp
      emptyDir: {}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
