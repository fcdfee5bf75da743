package app

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"
)

// -wait-for-frontend: the client waits until the frontend's port opens, and
// gives up with an error naming the address when it never does.
func TestWaitForTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	u := &url.URL{Scheme: "https", Host: addr}

	if _, err := waitForTCP(context.Background(), u, 300*time.Millisecond); err == nil {
		t.Fatal("waitForTCP succeeded against a closed port")
	}

	opened := make(chan net.Listener, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			opened <- nil
			return
		}
		opened <- l
	}()
	took, err := waitForTCP(context.Background(), u, 5*time.Second)
	if l := <-opened; l != nil {
		defer l.Close()
	}
	if err != nil {
		t.Fatalf("waitForTCP: %v", err)
	}
	if took < 250*time.Millisecond {
		t.Errorf("waitForTCP returned after %s, before the port opened", took)
	}
}
