package app

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// BackendAnswer is the backend's /process reply. The frontend embeds it
// unchanged, and the tests read it to see who called and with which serial.
type BackendAnswer struct {
	Service      string `json:"service"`
	RequestID    string `json:"request_id"`
	Message      string `json:"message"`
	Caller       string `json:"caller"`
	CallerSerial string `json:"caller_serial,omitempty"`
	ServerSerial string `json:"server_serial,omitempty"`
	MTLS         bool   `json:"mtls"`
	TLSVersion   string `json:"tls_version,omitempty"`
}

// FrontendAnswer is the frontend's /submit reply: its own view plus the
// backend's answer as received.
type FrontendAnswer struct {
	Service       string          `json:"service"`
	RequestID     string          `json:"request_id"`
	Caller        string          `json:"caller"`
	CallerSerial  string          `json:"caller_serial,omitempty"`
	ServerSerial  string          `json:"server_serial,omitempty"`
	MTLS          bool            `json:"mtls"`
	BackendStatus int             `json:"backend_status,omitempty"`
	Backend       json.RawMessage `json:"backend,omitempty"`
	Error         string          `json:"error,omitempty"`
}

func (s *Service) process(w http.ResponseWriter, r *http.Request, p peer) int {
	id, err := readRequestID(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return http.StatusBadRequest
	}
	writeJSON(w, http.StatusOK, BackendAnswer{
		Service:      "backend",
		RequestID:    id,
		Message:      "processed request " + id,
		Caller:       p.Identity,
		CallerSerial: p.Serial,
		ServerSerial: s.servingSerial(),
		MTLS:         r.TLS != nil,
		TLSVersion:   p.TLS,
	})
	return http.StatusOK
}

func (s *Service) submit(w http.ResponseWriter, r *http.Request, p peer) int {
	id, err := readRequestID(r.Body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return http.StatusBadRequest
	}
	ans := FrontendAnswer{
		Service:      "frontend",
		RequestID:    id,
		Caller:       p.Identity,
		CallerSerial: p.Serial,
		ServerSerial: s.servingSerial(),
		MTLS:         r.TLS != nil,
	}
	status, body, err := s.forward(r, id)
	code := http.StatusOK
	switch {
	case err != nil:
		code = http.StatusBadGateway
		ans.Error = err.Error()
	case status != http.StatusOK:
		code = http.StatusBadGateway
		ans.Error = fmt.Sprintf("backend answered %d", status)
	}
	ans.BackendStatus = status
	if json.Valid(body) {
		ans.Backend = body
	} else if len(body) > 0 {
		ans.Backend, _ = json.Marshal(string(body))
	}
	writeJSON(w, code, ans)
	return code
}

// forward sends the request on to the backend. The Idempotency-Key header
// marks the POST as safe to replay, which lets the transport retry it
// transparently when it picked a pooled connection the backend had just
// closed, a race that reloads make more frequent.
func (s *Service) forward(r *http.Request, id string) (int, []byte, error) {
	payload, err := json.Marshal(map[string]string{"request_id": id})
	if err != nil {
		return 0, nil, fmt.Errorf("encode backend request: %w", err)
	}
	req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, s.backend.JoinPath("process").String(), bytes.NewReader(payload))
	if err != nil {
		return 0, nil, fmt.Errorf("build backend request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := s.upstream.client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("call backend: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, body, fmt.Errorf("read backend answer: %w", err)
	}
	return resp.StatusCode, bytes.TrimSpace(body), nil
}
