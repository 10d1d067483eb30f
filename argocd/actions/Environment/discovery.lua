-- Actions on ferry.dev/Environment: "backup-now" (needs Argo CD 2.8 or later, which
-- lets an action create a resource).
local actions = {}
local has_store = obj.spec ~= nil and obj.spec.backups ~= nil and obj.spec.backups.store ~= nil
actions["backup-now"] = {["disabled"] = not has_store}
return actions
