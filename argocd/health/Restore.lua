-- Argo CD health check for ferry.dev/Restore (docs/argocd.md).
-- A one-shot: Completed is Healthy; Failed and Reverted (the restore failed and the
-- target was put back as it was) are Degraded; Pending, Queued, Quiescing, BackingUp,
-- Restoring, Verifying, Resuming and CheckingHealth are Progressing. A Restore whose
-- application was unhealthy afterwards is Healthy (it restored what was asked), its
-- message says so, and the ApplicationHealthy condition is false.
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to start the Restore"
  return hs
end
if status.phase == "Completed" then
  hs.status = "Healthy"
  hs.message = status.message or "Completed"
  return hs
end
if status.phase == "Failed" or status.phase == "Reverted" then
  hs.status = "Degraded"
  hs.message = status.phase .. ": " .. (status.error or status.message or "")
  return hs
end
local stale = unobserved()
if stale ~= nil then
  return stale
end
hs.status = "Progressing"
hs.message = status.phase .. ": " .. (status.message or "")
local quiesced = condition(status, "ApplicationQuiesced")
if quiesced ~= nil and quiesced.status == "True" and status.application ~= nil then
  hs.message = hs.message .. " (" .. tostring(status.application.workload) .. " is held at zero replicas)"
end
return hs
