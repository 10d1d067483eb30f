-- Actions on ferry.dev/BackupSchedule: "suspend" and "resume" (as for a CronJob).
local actions = {}
local suspended = obj.spec ~= nil and obj.spec.suspend == true
actions["suspend"] = {["disabled"] = suspended}
actions["resume"] = {["disabled"] = not suspended}
return actions
