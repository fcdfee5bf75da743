//go:build tools

// Package tools pins the Kubernetes binaries (control plane, node and kubectl) that the
// integration tests and `make demo` run. It is a module of its own so that
// k8s.io/kubernetes never enters the main module's dependency graph.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
