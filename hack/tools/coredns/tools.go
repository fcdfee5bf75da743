//go:build tools

// Package tools pins CoreDNS v1.15.0 for the local cluster's DNS
// (localhost/coredns:v1.15.0, built by hack/images). It is a module of its
// own so that CoreDNS and its plugins' dependencies never enter the main
// module. CoreDNS builds as published: `go build github.com/coredns/coredns`.
package tools

import (
	_ "github.com/coredns/coredns"
)
