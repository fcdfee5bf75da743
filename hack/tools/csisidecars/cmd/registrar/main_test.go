package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"

	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/csiconn"
	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/fakecsi"
)

const driver = "csi.cert-manager.io"

// kubeletClient is what the kubelet's plugin watcher does: dial the
// registration socket and speak pluginregistration/v1.
func kubeletClient(t *testing.T, sock string) registerapi.RegistrationClient {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return registerapi.NewRegistrationClient(conn)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

type setup struct {
	cfg     config
	regSock string
	csiSock string
	done    chan error
	cancel  context.CancelFunc
	fakeCSI *fakecsi.Server
}

// start runs the registrar before the driver's socket exists (it must
// wait), then starts the fake driver.
func start(t *testing.T) *setup {
	t.Helper()
	dir := fakecsi.ShortDir(t)
	s := &setup{
		csiSock: filepath.Join(dir, "csi.sock"),
		regSock: filepath.Join(dir, "registry", driver+"-reg.sock"),
		done:    make(chan error, 1),
		fakeCSI: &fakecsi.Server{Name: driver},
	}
	if err := os.Mkdir(filepath.Join(dir, "registry"), 0o755); err != nil {
		t.Fatal(err)
	}
	s.cfg = config{
		csiAddress:              "unix://" + s.csiSock,
		kubeletRegistrationPath: "/var/lib/kubelet/plugins/cert-manager-csi-driver/csi.sock",
		pluginRegistrationPath:  filepath.Join(dir, "registry"),
		timeout:                 time.Second,
		registeredFile:          filepath.Join(dir, "registered"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	t.Cleanup(cancel)
	go func() { s.done <- run(ctx, csiconn.NewLogger("registrar-test", 5), s.cfg) }()
	time.Sleep(300 * time.Millisecond)
	if exists(s.regSock) {
		t.Fatal("registration socket served before the CSI driver answered")
	}
	fakecsi.Serve(t, s.fakeCSI, s.csiSock)
	waitFor(t, "the registration socket", func() bool { return exists(s.regSock) })
	return s
}

func TestRegistersWithTheKubelet(t *testing.T) {
	s := start(t)
	client := kubeletClient(t, s.regSock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := client.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetType() != registerapi.CSIPlugin || info.GetName() != driver ||
		info.GetEndpoint() != s.cfg.kubeletRegistrationPath ||
		strings.Join(info.GetSupportedVersions(), ",") != "1.0.0" {
		t.Fatalf("GetInfo = %+v, want CSIPlugin %s at %s, versions [1.0.0]", info, driver, s.cfg.kubeletRegistrationPath)
	}
	if _, err := client.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the registered file", func() bool { return exists(s.cfg.registeredFile) })
	if err := probeRegistered(config{kubeletRegistrationPath: s.csiSock, registeredFile: s.cfg.registeredFile}); err != nil {
		t.Errorf("kubelet-registration-probe after registration: %v", err)
	}

	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run after cancel: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if exists(s.regSock) {
		t.Error("registration socket left behind after exit")
	}
}

func TestRefusedRegistrationEndsTheRegistrar(t *testing.T) {
	s := start(t)
	client := kubeletClient(t, s.regSock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{
		PluginRegistered: false, Error: "driver name clashes",
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		if err == nil || !strings.Contains(err.Error(), "driver name clashes") {
			t.Fatalf("run = %v, want the kubelet's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after a refused registration")
	}
	if exists(s.regSock) {
		t.Error("registration socket left behind after a refused registration")
	}
	if exists(s.cfg.registeredFile) {
		t.Error("registered file written although the kubelet refused")
	}
}

func TestReplacesAStaleSocket(t *testing.T) {
	dir := fakecsi.ShortDir(t)
	stale := filepath.Join(dir, driver+"-reg.sock")
	if err := os.WriteFile(stale, []byte("left by a killed registrar"), 0o644); err != nil {
		t.Fatal(err)
	}
	csiSock := filepath.Join(dir, "csi.sock")
	fakecsi.Serve(t, &fakecsi.Server{Name: driver}, csiSock)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, csiconn.NewLogger("registrar-test", 0), config{
			csiAddress: csiSock, kubeletRegistrationPath: "/x/csi.sock", pluginRegistrationPath: dir, timeout: time.Second,
		})
	}()
	waitFor(t, "a socket in place of the stale file", func() bool {
		st, err := os.Stat(stale)
		return err == nil && st.Mode()&os.ModeSocket != 0
	})
	info, err := kubeletClient(t, stale).GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil || info.GetName() != driver {
		t.Fatalf("GetInfo = %v, %v", info, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestChartFlags runs the built binary with exactly the arguments the
// cert-manager csi-driver chart passes (templates/daemonset.yaml) plus the
// registration directory, then stops it with SIGTERM like the kubelet.
func TestChartFlags(t *testing.T) {
	dir := fakecsi.ShortDir(t)
	bin := filepath.Join(dir, "registrar")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	csiSock := filepath.Join(dir, "csi.sock")
	fakecsi.Serve(t, &fakecsi.Server{Name: driver}, csiSock)
	cmd := exec.Command(bin,
		"-v=1",
		"--csi-address="+csiSock,
		"--kubelet-registration-path=/var/lib/kubelet/plugins/cert-manager-csi-driver/csi.sock",
		"--plugin-registration-path="+dir)
	cmd.Env = append(os.Environ(), "KUBE_NODE_NAME=node-1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	regSock := filepath.Join(dir, driver+"-reg.sock")
	waitFor(t, "the registration socket", func() bool { return exists(regSock) })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v, want 0\n%s", err, stderr.String())
	}
	if exists(regSock) {
		t.Error("socket left behind after SIGTERM")
	}
	if !strings.Contains(stderr.String(), `node "node-1"`) {
		t.Errorf("log does not name the node from KUBE_NODE_NAME:\n%s", stderr.String())
	}
}
