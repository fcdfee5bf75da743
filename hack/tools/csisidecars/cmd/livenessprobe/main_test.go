package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/csiconn"
	"github.com/mtls-demo/mtls-webhook/hack/tools/csisidecars/internal/fakecsi"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestHealthzFollowsProbe(t *testing.T) {
	dir := fakecsi.ShortDir(t)
	sock := filepath.Join(dir, "csi.sock")
	fake := &fakecsi.Server{Name: "csi.cert-manager.io"}
	fakecsi.Serve(t, fake, sock)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, csiconn.NewLogger("probe-test", 5), config{csiAddress: sock, probeTimeout: 300 * time.Millisecond}, lis)
	}()
	url := "http://" + lis.Addr().String() + "/healthz"

	yes, no := true, false
	for _, tc := range []struct {
		name       string
		ready      *bool
		err        error
		delay      time.Duration
		wantStatus int
		wantBody   string
	}{
		{"ready unset", nil, nil, 0, 200, "ok"},
		{"ready", &yes, nil, 0, 200, "ok"},
		{"not ready", &no, nil, 0, 500, "not ready"},
		{"probe error", nil, errors.New("disk on fire"), 0, 500, "disk on fire"},
		{"probe slower than --probe-timeout", &yes, nil, 2 * time.Second, 500, "Probe of csi.cert-manager.io"},
	} {
		before := fake.Probes()
		fake.SetProbe(tc.ready, tc.err, tc.delay)
		status, body := get(t, url)
		if status != tc.wantStatus || !strings.Contains(body, tc.wantBody) {
			t.Errorf("%s: GET /healthz = %d %q, want %d containing %q", tc.name, status, body, tc.wantStatus, tc.wantBody)
		}
		if fake.Probes() != before+1 {
			t.Errorf("%s: %d Probe calls for one /healthz, want 1", tc.name, fake.Probes()-before)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

// TestChartFlags runs the built binary with the arguments the cert-manager
// csi-driver chart passes (templates/daemonset.yaml).
func TestChartFlags(t *testing.T) {
	dir := fakecsi.ShortDir(t)
	bin := filepath.Join(dir, "livenessprobe")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock := filepath.Join(dir, "csi.sock")
	fakecsi.Serve(t, &fakecsi.Server{Name: "csi.cert-manager.io"}, sock)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	lis.Close()
	cmd := exec.Command(bin, "--csi-address="+sock, "--probe-timeout=3s", "--health-port="+strconv.Itoa(port), "-v=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok" {
				t.Fatalf("GET /healthz = %d %q, want 200 ok", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz on port %d: %v\n%s", port, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
	}
}
