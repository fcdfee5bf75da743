package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/mtls-demo/mtls-webhook/internal/logtail"
)

// Process is a child process with its output in a log file.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs binary with args, its output going to logPath. The process
// gets its own process group, and the kernel kills it if the caller dies
// without stopping it (a panic, go test's -timeout), so nothing outlives a
// test run.
func Start(binary string, args []string, dir, logPath string) (*Process, error) {
	return StartCommand(Command{Binary: binary, Args: args, Dir: dir, LogPath: logPath})
}

// Command is what StartCommand runs.
type Command struct {
	Binary  string
	Args    []string
	Dir     string   // working directory ("" = the caller's)
	Env     []string // nil = the caller's environment
	LogPath string   // stdout and stderr, truncated first
}

// StartCommand is Start with an environment: same process group, log file
// and death signal.
func StartCommand(c Command) (*Process, error) {
	lf, err := os.Create(c.LogPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Binary, c.Args...)
	cmd.Dir = c.Dir
	cmd.Env = c.Env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("starting %s: %w", c.Binary, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = lf.Close(); close(p.done) }()
	return p, nil
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop asks the process to stop (SIGTERM), kills it after 10 s, and waits
// until it is gone. It may be called more than once.
func (p *Process) Stop() { p.Terminate(0, 10*time.Second) }

// Terminate sends SIGTERM, again every resend (0: once) for processes that
// only begin to exit on a second one (kubelet 1.37), kills the process
// after timeout, and waits until it is gone. It may be called more than
// once.
func (p *Process) Terminate(resend, timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	kill := time.After(timeout)
	var again <-chan time.Time
	if resend > 0 {
		t := time.NewTicker(resend)
		defer t.Stop()
		again = t.C
	}
	for {
		select {
		case <-p.done:
			return
		case <-again:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		case <-kill:
			_ = p.cmd.Process.Kill()
			<-p.done
			return
		}
	}
}

// controllerManagerArgs runs only the controllers that turn a Deployment
// into Pods and the one that creates each namespace's default
// ServiceAccount, so Deployments behave as in a cluster, without a
// scheduler, kubelets, leader election or a serving port.
func controllerManagerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=deployment-controller,replicaset-controller,serviceaccount-controller",
		"--use-service-account-credentials=false",
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
		"-v=1",
	}
}

// StartControllerManager runs the kube-controller-manager binary with
// controllerManagerArgs and waits, up to timeout, until it works: its
// serviceaccount controller has created default/default, read through c.
// On failure the process is stopped and the error ends with its log's tail.
func StartControllerManager(binary, kubeconfig, logPath string, c client.Reader, timeout time.Duration) (*Process, error) {
	p, err := Start(binary, controllerManagerArgs(kubeconfig), "", logPath)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-p.done:
			return false, fmt.Errorf("kube-controller-manager exited")
		default:
		}
		err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "default"}, &corev1.ServiceAccount{})
		return err == nil, nil
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("waiting for kube-controller-manager: %w; its log (%s) ends:\n%s", err, logPath, Tail(logPath, 20))
	}
	return p, nil
}

// Tail returns the last n lines of the log at path, without the lines
// readiness polling repeats for every failed probe, so the cause stays in
// view.
func Tail(path string, n int) string {
	return logtail.File(path, n, func(l string) bool { return strings.Contains(l, "healthz check failed") })
}

// WaitReady polls a controller-runtime /readyz URL (the webhook's turns 200
// once its HTTPS server listens and its caches are synced) until it answers
// 200, the process reports on exited, or timeout passes. The error then
// holds the last verbose readiness report, which names the failing check.
func WaitReady(url string, exited <-chan error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	last := "no answer"
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-exited:
			if err == nil {
				return false, errors.New("exited before it was ready")
			}
			return false, fmt.Errorf("exited before it was ready: %w", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"?verbose", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() == nil { // keep the last real report
				last = err.Error()
			}
			return false, nil
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		last = strings.TrimSpace(string(body))
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready after %s: %w; last /readyz report:\n%s", url, timeout, err, last)
	}
	return nil
}
