-- Argo CD health check for ferry.dev/Backup (docs/argocd.md).
-- A one-shot: Completed is Healthy, Failed is Degraded (both final, even if
-- spec.deletionPolicy is edited later); Pending and Running are Progressing.
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
local stale = unobserved()
if stale ~= nil then
  return stale
end
hs.status = "Progressing"
hs.message = status.phase .. ": " .. (status.message or "")
return hs
