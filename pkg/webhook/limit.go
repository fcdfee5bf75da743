package webhook

import (
	"fmt"
	"net/http"
)

// MaxRequestBytes bounds an admission review body. The API server refuses
// request bodies over 3 MiB (its --max-request-bytes default), so no pod it
// stored can need more; the extra 64 KiB covers the AdmissionReview envelope.
const MaxRequestBytes = 3<<20 + 64<<10

// limitBody refuses bodies over max before they are read, and caps the read
// for bodies of unknown length, so a hostile client cannot make the webhook
// buffer without bound.
func limitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			http.Error(w, fmt.Sprintf("admission review of %d bytes is over the %d-byte limit", r.ContentLength, max), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}
