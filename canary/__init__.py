"""canary: progressive delivery for Istio."""
