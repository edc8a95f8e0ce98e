-- Argo CD health check for canary.dev/Rollout.
-- Installed as resource.customizations.health.canary.dev_Rollout in argocd-cm (see argocd-cm.yaml).
-- Healthy: the current release succeeded. Progressing: it is still running (or paused at a gate).
-- Degraded: it rolled back, was aborted, or the Rollout is invalid. The controller's message is shown.
local hs = {}
local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the canary controller to pick up the Rollout"
  return hs
end

-- A status about the previous release (spec.canary.version not picked up yet) is not final.
local generation = obj.metadata and obj.metadata.generation
local observed = status.observedGeneration
local wanted = obj.spec and obj.spec.canary and obj.spec.canary.version
local stale = (generation ~= nil and (observed == nil or observed < generation))
  or (status.phase ~= "Invalid" and wanted ~= nil and status.canaryVersion ~= wanted)

local message = status.message or ""
if stale then
  hs.status = "Progressing"
  hs.message = "Waiting for the canary controller to pick up " .. tostring(wanted)
elseif status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = message
elseif status.phase == "RolledBack" or status.phase == "Aborted" or status.phase == "Invalid" then
  hs.status = "Degraded"
  hs.message = status.phase .. ": " .. message
elseif status.phase == "Pending" or status.phase == "Progressing" or status.phase == "Paused" then
  hs.status = "Progressing"
  if status.phase == "Paused" and status.pausedReason == "manualGate" then
    hs.message = "Paused, waiting for `kubectl canary promote`: " .. message
  else
    hs.message = status.phase .. ": " .. message
  end
else
  hs.status = "Unknown"
  hs.message = "unknown phase " .. tostring(status.phase)
end
return hs
