-- Create a manual Backup of this Environment, named <environment>-<UTC time>. The
-- Backup carries no ownerReference and no Argo CD tracking label: it is not part of
-- the Application, so Argo CD never prunes it, and deleting the Environment leaves it
-- (and its artifact, deletionPolicy Retain) in place.
local os = require("os")
local backup = {}
backup.apiVersion = "ferry.dev/v1alpha1"
backup.kind = "Backup"
backup.metadata = {}
backup.metadata.name = string.sub(obj.metadata.name, 1, 45) .. "-" .. os.date("!%Y%m%d%H%M%S")
backup.metadata.namespace = obj.metadata.namespace
backup.metadata.labels = {}
backup.metadata.labels["ferry.dev/environment"] = obj.metadata.name
backup.metadata.annotations = {}
backup.metadata.annotations["ferry.dev/created-by"] = "argocd-action-backup-now"
backup.spec = {}
backup.spec.environment = obj.metadata.name
backup.spec.reason = "manual"
local created = {}
created.operation = "create"
created.resource = backup
local result = {}
result[1] = created
return result
