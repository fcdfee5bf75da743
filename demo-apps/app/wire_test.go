package app

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a TCP proxy that keeps a copy of every byte it relays, the
// view of anyone on the network path between frontend and backend.
type recorder struct {
	ln       net.Listener
	mu       sync.Mutex
	upstream bytes.Buffer // frontend -> backend
	down     bytes.Buffer // backend -> frontend
	wg       sync.WaitGroup
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.wg.Add(2)
			go r.pipe(out, in, &r.upstream)
			go r.pipe(in, out, &r.down)
		}
	}()
	return r
}

func (r *recorder) pipe(dst, src net.Conn, rec *bytes.Buffer) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			r.mu.Lock()
			rec.Write(buf[:n])
			r.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (r *recorder) captured() (up, down []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.upstream.Bytes()), bytes.Clone(r.down.Bytes())
}

// tlsRecords checks that data is nothing but a sequence of well-formed TLS
// records (handshake, alert, change-cipher-spec or encrypted application
// data) and returns how many there were.
func tlsRecords(t *testing.T, data []byte) int {
	t.Helper()
	n := 0
	for len(data) > 0 {
		if len(data) < 5 {
			t.Fatalf("record %d: %d trailing bytes, not a TLS record header", n, len(data))
		}
		typ, ver, l := data[0], binary.BigEndian.Uint16(data[1:3]), int(binary.BigEndian.Uint16(data[3:5]))
		if typ < 20 || typ > 23 || ver < 0x0301 || ver > 0x0304 || l > 1<<14+2048 || len(data) < 5+l {
			t.Fatalf("record %d: type %d version %#x length %d is not TLS", n, typ, ver, l)
		}
		data = data[5+l:]
		n++
	}
	return n
}

// What an observer between frontend and backend sees: the JSON in plain
// mode, only TLS records in mTLS mode.
func TestWireShowsPlaintextOnlyWithoutMTLS(t *testing.T) {
	submit := func(t *testing.T, c *http.Client, url string) {
		t.Helper()
		resp, body, err := postJSON(c, url+"/submit", `{"request_id": "4242"}`)
		if err != nil || resp.StatusCode != 200 || !strings.Contains(string(body), "processed request 4242") {
			t.Fatalf("submit: %v %s", err, body)
		}
	}

	t.Run("plain", func(t *testing.T) {
		be := Defaults(RoleBackend)
		be.UseMTLS, be.Port = false, 0
		_, beAddr := start(t, be)
		rec := newRecorder(t, beAddr)
		fe := Defaults(RoleFrontend)
		fe.UseMTLS, fe.Port, fe.BackendURL = false, 0, "http://"+rec.ln.Addr().String()
		_, feAddr := start(t, fe)
		submit(t, &http.Client{Timeout: 10 * time.Second}, "http://"+feAddr)
		up, down := rec.captured()
		if !bytes.Contains(up, []byte(`"request_id"`)) || !bytes.Contains(up, []byte("4242")) {
			t.Fatalf("plain mode: request JSON not visible on the wire: %q", up)
		}
		if !bytes.Contains(down, []byte("processed request 4242")) {
			t.Fatalf("plain mode: answer not visible on the wire: %q", down)
		}
	})

	t.Run("mtls", func(t *testing.T) {
		ca := newCA(t, "demo CA")
		dirs := map[string]string{}
		for _, n := range []string{"backend", "frontend"} {
			dirs[n] = t.TempDir()
			publish(t, dirs[n], issue(t, ca, n), ca)
		}
		_, beAddr := start(t, serverOpts(RoleBackend, dirs["backend"]))
		rec := newRecorder(t, beAddr)
		fe := serverOpts(RoleFrontend, dirs["frontend"])
		fe.BackendURL = "https://localhost:" + portOf(rec.ln.Addr().String())
		_, feAddr := start(t, fe)
		submit(t, tlsClient(ca, issue(t, ca, "client")), "https://"+feAddr)
		up, down := rec.captured()
		for _, secret := range []string{"request_id", "4242", "processed request"} {
			if bytes.Contains(up, []byte(secret)) || bytes.Contains(down, []byte(secret)) {
				t.Fatalf("mTLS mode: %q visible on the wire", secret)
			}
		}
		if nu, nd := tlsRecords(t, up), tlsRecords(t, down); nu < 3 || nd < 3 {
			t.Fatalf("mTLS mode: only %d/%d TLS records relayed", nu, nd)
		}
	})
}
