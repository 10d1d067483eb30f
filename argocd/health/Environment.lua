-- Argo CD health check for ferry.dev/Environment (docs/argocd.md).
-- Ready=True: Healthy (drift is reported in the message, it does not fail a sync);
-- Stalled=True: Degraded (the spec cannot work as written); otherwise Progressing
-- (not observed yet, status older than the spec, or the database not reachable yet).
local ready = condition(status, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ferry operator to check the Environment"
  return hs
end
local stale = unobserved()
if stale ~= nil then
  return stale
end
local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ""
  local drifted = condition(status, "Drifted")
  if drifted ~= nil and drifted.status == "True" then
    hs.message = "Drifted: " .. (drifted.message or "")
  end
  return hs
end
hs.status = "Progressing"
hs.message = ready.reason .. ": " .. (ready.message or "")
return hs
