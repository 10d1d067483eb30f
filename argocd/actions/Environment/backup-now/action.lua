-- Create a manual Backup of this Environment, named <environment>-<UTC time>. The
-- Backup carries no ownerReference and no Argo CD tracking label: it is not part of
-- the Application, so Argo CD never prunes it, and deleting the Environment leaves it
-- (and its artifact, deletionPolicy Retain) in place.
-- Argo CD opens no `string` library for actions (base, table and a safe `os` only), so
-- the name is not cut: an Environment name longer than 238 characters is refused.
local os = require("os")
if #obj.metadata.name > 238 then
  error("backup-now: the Environment's name is too long for a Backup named <environment>-<UTC time> (253 characters at most); create the Backup by hand", 0)
end
local backup = {}
backup.apiVersion = "ferry.dev/v1alpha1"
backup.kind = "Backup"
backup.metadata = {}
backup.metadata.name = obj.metadata.name .. "-" .. os.date("!%Y%m%d%H%M%S")
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
