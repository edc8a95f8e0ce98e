// Pins the modules whose CRDs the real control plane installs (downloaded with
// `go mod download -json`, never built): Istio's CRDs and Gateway API's standard channel.
module canary.dev/controlplane/crds

go 1.25.0

require (
	istio.io/api v1.32.0
	sigs.k8s.io/gateway-api v1.6.3
)
