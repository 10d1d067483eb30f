-- Approve the plan the operator computed and shows in status: copy status.planDigest
-- into spec.approval.planDigest. The operator plans again before applying and goes on
-- only if the plan still has exactly this digest; if the source or target changed in
-- between, the Migration stays AwaitingApproval and says so.
if obj.status == nil or obj.status.phase ~= "AwaitingApproval" or obj.status.planDigest == nil then
  error("the Migration is not awaiting approval", 0)
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  error("the spec changed since the plan was made; wait for the operator to plan again", 0)
end
if obj.spec.approval == nil then
  obj.spec.approval = {}
end
obj.spec.approval.required = true
obj.spec.approval.planDigest = obj.status.planDigest
return obj
