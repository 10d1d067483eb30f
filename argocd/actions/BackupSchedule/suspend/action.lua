-- Stop creating backups; existing Backups and their retention are unchanged.
obj.spec.suspend = true
return obj
