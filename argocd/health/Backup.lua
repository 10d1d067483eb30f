-- Argo CD health check for ferry.dev/Backup (docs/argocd.md).
-- A one-shot: Completed is Healthy, Failed is Degraded (both final, even if
-- spec.deletionPolicy is edited later); Pending and Running are Progressing.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to start the Backup"
  return hs
end
if status.phase == "Completed" then
  hs.status = "Healthy"
  hs.message = "Completed: " .. (status.id or "") .. " (" .. (status.size or "?") .. ")"
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. (status.error or status.message or "")
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to observe generation " .. generation
  return hs
end
hs.status = "Progressing"
hs.message = status.phase .. ": " .. (status.message or "")
return hs
