package podnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Capture records, for every TCP connection to a port inside one pod's
// network namespace, the first bytes the client sent, as they crossed the
// pod's interface. It reads real frames from an AF_PACKET socket opened in
// that namespace, so it sees what any tcpdump on the pod's eth0 would.
type Capture struct {
	fd   int
	port uint16
	max  int
	dsts []netip.Addr // when set, only connections to these addresses

	mu     sync.Mutex
	flows  map[flowKey]*flow
	order  []flowKey
	frames int
	done   chan struct{}
	stop   chan struct{}
}

type flowKey struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

type flow struct {
	next    uint32 // next expected sequence number, 0 before the first segment
	payload []byte
}

// maxFlows bounds the memory of a long capture: later connections are
// counted in Frames but not recorded.
const maxFlows = 4096

// CapturePod starts capturing TCP segments sent to port in the network
// namespace of pid, keeping up to maxBytes of client data per connection.
// With dsts, only segments whose destination is one of them are seen (on a
// node: a pod's address and its Service's, so that other pods' traffic to
// the same port is left out).
func CapturePod(pid int, port uint16, maxBytes int, dsts ...netip.Addr) (*Capture, error) {
	fd, err := packetSocketIn(pid)
	if err != nil {
		return nil, err
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	c := &Capture{fd: fd, port: port, max: maxBytes, dsts: dsts, flows: map[flowKey]*flow{},
		done: make(chan struct{}), stop: make(chan struct{})}
	go c.loop()
	return c, nil
}

// packetSocketIn opens an AF_PACKET socket in the network namespace of
// pid. A socket keeps the namespace it was created in, so the thread
// switches in, creates it and switches back.
func packetSocketIn(pid int) (int, error) {
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return -1, fmt.Errorf("network namespace of pid %d: %w", pid, err)
	}
	defer func() { _ = target.Close() }()
	runtime.LockOSThread()
	own, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return -1, err
	}
	defer func() { _ = own.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return -1, fmt.Errorf("entering the network namespace of pid %d (needs root): %w", pid, err)
	}
	fd, sockErr := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the pod's namespace: keep it locked so
		// that the runtime throws it away with this goroutine.
		if sockErr == nil {
			_ = unix.Close(fd)
		}
		return -1, fmt.Errorf("returning to the host network namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if sockErr != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", sockErr)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *Capture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // the pod's own sends; the client's bytes arrive as PACKET_HOST
		}
		c.frame(buf[:n])
	}
}

// frame parses Ethernet, IPv4 and TCP and records client data to c.port.
func (c *Capture) frame(b []byte) {
	if len(b) < 14 || binary.BigEndian.Uint16(b[12:14]) != 0x0800 {
		return
	}
	ip := b[14:]
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != unix.IPPROTO_TCP {
		return
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < 20 || total < ihl || total > len(ip) {
		return
	}
	tcp := ip[ihl:total]
	if len(tcp) < 20 {
		return
	}
	dport := binary.BigEndian.Uint16(tcp[2:4])
	if dport != c.port {
		return
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) {
		return
	}
	key := flowKey{
		src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])),
		srcPort: binary.BigEndian.Uint16(tcp[0:2]), dstPort: dport,
	}
	if len(c.dsts) > 0 && !slices.Contains(c.dsts, key.dst) {
		return
	}
	seq := binary.BigEndian.Uint32(tcp[4:8])
	syn := tcp[13]&0x02 != 0
	data := tcp[off:]

	c.mu.Lock()
	defer c.mu.Unlock()
	c.frames++
	f := c.flows[key]
	if f == nil {
		if len(c.flows) >= maxFlows {
			return
		}
		f = &flow{}
		c.flows[key] = f
		c.order = append(c.order, key)
	}
	if syn {
		f.next = seq + 1
		return
	}
	if len(data) == 0 || len(f.payload) >= c.max {
		return
	}
	if f.next != 0 && seq != f.next {
		return // a retransmission or a segment after a gap
	}
	room := c.max - len(f.payload)
	f.payload = append(f.payload, data[:min(room, len(data))]...)
	f.next = seq + uint32(len(data))
}

// Conns returns the first bytes of each connection with data, oldest first.
func (c *Capture) Conns() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, 0, len(c.order))
	for _, k := range c.order {
		if f := c.flows[k]; len(f.payload) > 0 {
			out = append(out, append([]byte(nil), f.payload...))
		}
	}
	return out
}

// Frames is how many TCP segments to the port were seen.
func (c *Capture) Frames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// Close stops the capture and releases the socket.
func (c *Capture) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done // the receive timeout bounds the wait
	return unix.Close(c.fd)
}
