-- Shared by every Ferry health check. The source keeps it once, in
-- argocd/prelude.lua; `make argocd-cm` splices it in front of each kind's
-- script, because Argo CD runs each script alone, with nothing but `obj`.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation

-- The condition of type `kind` in `status`, or nil.
local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

-- Progressing while the status describes an older spec than the one applied, else nil.
local function unobserved()
  if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
    return {status = "Progressing", message = "Waiting for the Ferry operator to observe generation " .. generation}
  end
  return nil
end

