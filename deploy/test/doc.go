// Package deploytest tests the deployment files under deploy/ and the
// Dockerfile: the container image (built and run with podman), the Helm
// chart (linted and rendered with Helm as a library, every object decoded
// strictly with the Kubernetes API types, the probes and env checked
// against the real binary), the checked-in manifests, the Compose file and
// the systemd unit.
//
// It is a module of its own so that Helm and the Kubernetes libraries never
// enter Herald's go.mod. `make deploy-test` runs it (part of `make test`).
package deploytest
