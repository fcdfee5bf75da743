//go:build tools

// Package tools pins etcd, the store behind the test control plane. Its own
// module: etcd's go.mod carries replace directives, so `go install pkg@v`
// cannot build it, and its dependency set must not leak into the main module.
package tools

import _ "go.etcd.io/etcd/server/v3"
