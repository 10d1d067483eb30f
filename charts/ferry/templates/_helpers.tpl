{{/* Names, labels and the operator's RBAC rules, shared by the templates. */}}

{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ferry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ferry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ include "ferry.chart" . }}
{{ include "ferry.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: ferry
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ferry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ferry.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ferry.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "ferry.backupClaimName" -}}
{{- default (printf "%s-backups" (include "ferry.fullname" .)) .Values.backupStore.existingClaim }}
{{- end }}

{{/*
The operator's rules: exactly the API calls it makes (docs/install.md, "RBAC").
- Kopf lists and watches the five kinds, and patches them (finalizer, ferry.dev/*
  annotations); it never updates (PUT) them.
- Ferry's client (controller/k8s/client.py) gets and lists them, writes status through
  the /status subresource (merge patch), and creates and deletes Backups only (a
  BackupSchedule's backups and their retention).
- Backups are patched (labels, ownerReferences) when a schedule adopts them. With
  `backupsOnDelete: Delete` they are owned by the schedule with blockOwnerDeletion, which
  clusters with the OwnerReferencesPermissionEnforcement admission plugin allow only to
  who may update the owner's finalizers: that subresource alone, not the BackupSchedule.
- Events: Ferry creates its own, one per occurrence (Kopf's posting is off); it never
  patches them. Secrets: see ferry.secretRules.
No namespaces, CRDs or kopf.dev peering: Ferry runs Kopf standalone with fixed namespaces.
*/}}
{{- define "ferry.operatorRules" -}}
- apiGroups: [ferry.dev]
  resources: [environments, backupschedules, restores, migrations]
  verbs: [get, list, watch, patch]
- apiGroups: [ferry.dev]
  resources: [backups]
  verbs: [get, list, watch, patch, create, delete]
- apiGroups: [ferry.dev]
  resources: [backupschedules/finalizers]
  verbs: [update]
- apiGroups: [ferry.dev]
  resources: [environments/status, backups/status, backupschedules/status, restores/status, migrations/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# An Environment's spec.application: its replica count read and set through the scale
# subresource only (never the pod template, which is only read), and its pods listed
# to see them gone. spec.application.bootCheck (with bootCheck.enabled): one
# short-lived pod made from that template, pointed at a rehearsal's or drill's copy,
# read, and deleted.
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get]
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [pods]
  {{- if .Values.bootCheck.enabled }}
  verbs: [list, get, create, delete]
  {{- else }}
  verbs: [list]
  {{- end }}
{{- if .Values.jobs.enabled }}
# spec.execution.mode Job: the operator's Jobs, created (suspended while their object
# quiesces its application), read (their pods' termination messages through the pod
# list above), patched only to let a suspended one start (a Job's pod template cannot
# change), and deleted to run again after a temporary failure.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, delete]
# Each Job's pod reports progress with its own token: a ServiceAccount, and a Role and
# RoleBinding allowing `patch` on that one object's status (controller/k8s/job_access.py).
# RBAC lets the operator grant that only because it holds it (the status rule above):
# no `escalate` or `bind`. Owned by the object, they go with it. The namespace's
# `default` account is read for its imagePullSecrets, which the Job's account copies.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create]
{{- end }}
{{- end }}

{{/*
Secrets: read one by name (an Environment's URL or password, store and Git credentials);
never listed, watched or written. Granted only where Environments live: in the watched
namespaces of a scoped install, in rbac.secretNamespaces of a cluster-wide one.
*/}}
{{- define "ferry.secretRules" -}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
