-- Actions on ferry.dev/Migration: "approve" while it awaits approval.
local actions = {}
local status = obj.status or {}
local waiting = status.phase == "AwaitingApproval" and status.planDigest ~= nil
local current = obj.metadata.generation == nil or status.observedGeneration == obj.metadata.generation
actions["approve"] = {["disabled"] = not (waiting and current)}
return actions
