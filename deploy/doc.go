// Package deploy holds pcistream's deployment artifacts (Dockerfile,
// Kubernetes manifests, Prometheus rules, Grafana dashboard) and the tests
// that keep them honest: non-root, read-only root filesystems, and alerts and
// panels that name only metrics pcistream exports. It has no Go API.
package deploy
