-- Argo CD health check for ferry.dev/BackupSchedule (docs/argocd.md).
-- Status older than the spec: Progressing. spec.suspend: Suspended. Stalled=True
-- (an invalid spec): Degraded. DrillFailed=True (its last restore drill, spec.drill,
-- failed or could not run): Degraded. Ready=True: Healthy; a failed last backup is
-- named in the message but does not make the schedule Degraded (the failed Backup is).
local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to check the BackupSchedule"
  return hs
end
local stale = unobserved()
if stale ~= nil then
  return stale
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: no backups are created"
  return hs
end
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
local drill = condition(status, "DrillFailed")
if drill ~= nil and drill.status == "True" then
  hs.status = "Degraded"
  hs.message = drill.reason .. ": " .. (drill.message or "")
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  local last = condition(status, "LastBackupSucceeded")
  if last ~= nil and last.status == "False" then
    hs.message = hs.message .. "; " .. (last.message or "the last backup failed")
  end
  return hs
end
hs.status = "Progressing"
hs.message = ready.reason .. ": " .. (ready.message or "")
return hs
