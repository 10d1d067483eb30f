-- Create backups again from the next scheduled time (missed runs are not caught up
-- beyond the latest one).
obj.spec.suspend = false
return obj
