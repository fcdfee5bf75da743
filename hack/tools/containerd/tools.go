//go:build tools

// Package tools pins containerd (daemon, ctr and the runc v2 shim) for the
// local node that internal/cluster starts. It is a module of its own so that
// containerd never enters the main module's dependency graph. make/node.mk
// builds it with CGO_ENABLED=0 and the tags that leave out the snapshotters
// this node does not use (btrfs, devmapper, zfs, aufs).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
