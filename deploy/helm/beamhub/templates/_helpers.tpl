{{- /*
Every name this chart gives an object comes from here.

The prefix follows Zero to JupyterHub's habit: a fixed, readable prefix ("beamhub") unless
fullnameOverride says otherwise, so the hub's values (jupyterhub.hub.extraVolumes, which the
subchart does not template) can name our ConfigMaps. Two releases in one cluster need different
fullnameOverride values because PriorityClasses are cluster-wide.
*/ -}}

{{- define "beamhub.fullname" -}}
{{- .Values.fullnameOverride | default "beamhub" | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "beamhub.chart" -}}
{{- printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* Labels every object carries. Call with (dict "context" . "component" "scheduler"). */ -}}
{{- define "beamhub.labels" -}}
{{ include "beamhub.selectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: beamhub
helm.sh/chart: {{ include "beamhub.chart" .context }}
{{- end -}}

{{- define "beamhub.selectorLabels" -}}
app.kubernetes.io/name: beamhub
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- /* ---- the environment catalog and the hub's settings ---- */ -}}

{{- define "beamhub.catalogConfigMapName" -}}
{{- include "beamhub.fullname" . }}-catalog
{{- end -}}

{{- define "beamhub.hubSettingsConfigMapName" -}}
{{- include "beamhub.fullname" . }}-hub-settings
{{- end -}}

{{- /*
Where the hub finds them: both ConfigMaps projected into one folder (jupyterhub.hub.extraVolumes
and extraVolumeMounts must agree; checks.yaml stops an install where they do not). These are the
defaults of beamhub.hub.k8sconfig, so the hub needs no environment variable to find them.
*/ -}}
{{- define "beamhub.hubConfigDir" -}}/etc/beamhub{{- end -}}
{{- define "beamhub.catalogPath" -}}{{ include "beamhub.hubConfigDir" . }}/catalog.yaml{{- end -}}
{{- define "beamhub.hubSettingsPath" -}}{{ include "beamhub.hubConfigDir" . }}/settings.json{{- end -}}

{{- /* ---- priority classes: one per QoS class ---- */ -}}

{{- define "beamhub.priorityClassPrefix" -}}
{{- include "beamhub.fullname" . -}}
{{- end -}}

{{- /* Call with (dict "context" . "qos" "guaranteed"). */ -}}
{{- define "beamhub.priorityClassName" -}}
{{- include "beamhub.priorityClassPrefix" .context }}-{{ .qos }}
{{- end -}}

{{- /* ---- the scheduler: kube-scheduler + the extender, one Deployment ---- */ -}}

{{- define "beamhub.scheduler.fullname" -}}
{{- include "beamhub.fullname" . }}-scheduler
{{- end -}}

{{- /* The profile name session pods opt into with spec.schedulerName. */ -}}
{{- define "beamhub.scheduler.profileName" -}}
{{- .Values.scheduler.profileName -}}
{{- end -}}

{{- define "beamhub.scheduler.serviceAccountName" -}}
{{- include "beamhub.scheduler.fullname" . -}}
{{- end -}}

{{- define "beamhub.scheduler.configMapName" -}}
{{- include "beamhub.scheduler.fullname" . }}-config
{{- end -}}

{{- define "beamhub.scheduler.clusterRoleName" -}}
{{- printf "%s-%s" (include "beamhub.scheduler.fullname" .) .Release.Namespace -}}
{{- end -}}

{{- define "beamhub.scheduler.leaseName" -}}
{{- include "beamhub.scheduler.fullname" . -}}
{{- end -}}

{{- define "beamhub.scheduler.serviceName" -}}
{{- include "beamhub.scheduler.fullname" . -}}
{{- end -}}

{{- /* In-cluster URL of the extender's /summary, for the hub's launch page. */ -}}
{{- define "beamhub.scheduler.summaryUrl" -}}
{{- printf "http://%s.%s.svc:%d/summary" (include "beamhub.scheduler.serviceName" .) .Release.Namespace (int .Values.scheduler.extender.port) -}}
{{- end -}}

{{- define "beamhub.scheduler.pdbName" -}}
{{- include "beamhub.scheduler.fullname" . -}}
{{- end -}}

{{- /* ---- network policies ---- */ -}}

{{- define "beamhub.networkPolicyName" -}}
{{- include "beamhub.scheduler.fullname" . -}}
{{- end -}}

{{- /* ---- batch jobs (issue 8 item 4): what the hub's jobs service may do in this namespace ---- */ -}}

{{- define "beamhub.jobs.roleName" -}}
{{- include "beamhub.fullname" . }}-jobs
{{- end -}}

{{- /* The hub's ServiceAccount, as the jupyterhub subchart names it. */ -}}
{{- define "beamhub.hub.serviceAccountName" -}}
{{- $sa := ((.Values.jupyterhub).hub).serviceAccount | default dict -}}
{{- $sa.name | default "hub" -}}
{{- end -}}

{{- /* Labels the jupyterhub subchart puts on its hub pod (the NetworkPolicy admits it). */ -}}
{{- define "beamhub.hub.podSelector" -}}
app: jupyterhub
component: hub
release: {{ .Release.Name }}
{{- end -}}

{{- define "beamhub.image" -}}
{{- printf "%s:%s" .name (.tag | toString) -}}
{{- end -}}
