//go:build tools

// Package tools pins kube-router, whose network-policy controller (run with
// only --run-firewall) enforces NetworkPolicy on the local node through
// iptables and ipset; see internal/netpol. Its own module so that
// kube-router's dependency set (client-go v0.29, gobgp, docker) never enters
// the main module or the Kubernetes tools module.
//
// v2.1.0 is the only kube-router/v2 version the module proxy serves here
// (`go list -m -versions`). go.mod is kube-router v2.1.0's own require list
// and go.sum its own go.sum, so every package in the binary is built at the
// version upstream released with. Do not `go mod tidy` here: tidy would
// resolve the imports of github.com/docker/docker (+incompatible, no go.mod)
// at their latest versions and lift grpc, otel and x/* far above upstream's.
package tools

import _ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
