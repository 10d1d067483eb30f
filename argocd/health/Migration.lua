-- Argo CD health check for ferry.dev/Migration (docs/argocd.md).
-- A Migration is a one-shot: Succeeded is Healthy, Failed and RolledBack are Degraded,
-- and a finished Migration stays so even if its spec is edited later (it never runs
-- again). AwaitingApproval is Suspended: a pending approval holds a sync, it does not
-- fail it. Everything else, and a status older than the spec, is Progressing: while
-- the target's application is quiesced (Quiescing … Resuming, CheckingHealth,
-- RollingBack) the message says so, since the application is down meanwhile.
-- Rehearsing (spec.rehearsal: Required) is Progressing: the plan runs on a scratch copy
-- and the target is only read; a Migration that failed its rehearsal is Degraded, and
-- the message says the target was not touched.
local function message(status)
  if status.message ~= nil and status.message ~= "" then
    return status.message
  end
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.message ~= nil then
    return ready.message
  end
  return ""
end

if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to pick the Migration up"
  return hs
end
local phase = status.phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message(status)
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  if status.rehearsal ~= nil and status.rehearsal.outcome == "Failed" then
    hs.message = "Failed in rehearsal (the target was not touched): " .. message(status)
  else
    hs.message = "Failed: " .. message(status)
  end
  return hs
end
if phase == "RolledBack" then
  hs.status = "Degraded"
  local ready = condition(status, "Ready")
  if ready ~= nil and ready.reason == "ApplicationUnhealthy" then
    hs.message = "RolledBack (the application was unhealthy after it, and runs the old configuration again): " .. message(status)
  else
    hs.message = "RolledBack (the target was left as it was): " .. message(status)
  end
  return hs
end
local stale = unobserved()
if stale ~= nil then
  return stale
end
if phase == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = "AwaitingApproval: " .. message(status)
  return hs
end
hs.status = "Progressing"
hs.message = phase .. ": " .. message(status)
if phase == "Rehearsing" then
  hs.message = "Rehearsing on a scratch copy of the target (the target is only read so far)"
end
local quiesced = condition(status, "ApplicationQuiesced")
if quiesced ~= nil and quiesced.status == "True" and status.application ~= nil then
  hs.message = hs.message .. " (" .. tostring(status.application.workload) .. " is held at zero replicas, "
    .. tostring(status.application.replicas) .. " to restore)"
end
return hs
