//go:build tools

// Package tools pins the cert-manager CSI driver binary that `make demo`
// and the demo end-to-end tests run (bin/cert-manager-csi-driver). It is a
// module of its own so that the driver's main package and its flags never
// enter the main module's build; its versions follow the main module's
// (cert-manager v1.19.2, csi-lib v0.10.0, k8s.io/* v0.37.2).
package tools

import (
	_ "github.com/cert-manager/csi-driver/cmd/app"
)
