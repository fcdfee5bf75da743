package annotations

import (
	"fmt"
	"time"
)

// Limits cap what one pod's annotations may cost the webhook, the issuer and
// the CSI driver. Each is a flag of the webhook (see internal/cli); a zero
// field means the documented default.
type Limits struct {
	// MaxValueBytes is the longest value any mtls.demo/ annotation may
	// have. Longer values are refused before they are parsed.
	MaxValueBytes int
	// MaxDNSNames caps the DNS names of one certificate, whether written in
	// mtls.demo/dns-names or derived from Services.
	MaxDNSNames int
	// MaxURISANs caps the URI SANs of one certificate, the pod's own SPIFFE
	// ID included.
	MaxURISANs int
	// MinDuration and MaxDuration bound the certificate lifetime.
	MinDuration time.Duration
	MaxDuration time.Duration
	// MinRenewInterval is the shortest time a certificate must stay in use
	// between two renewals (duration minus renew-before): each renewal is
	// a new key and a CertificateRequest for every replica, so a
	// renew-before just under the duration would renew every second.
	MinRenewInterval time.Duration
	// MaxRSAKeySize is the largest RSA key a pod may ask for: every renewal
	// generates a key, and an RSA-8192 key costs seconds of CPU.
	MaxRSAKeySize int
}

// Defaults of Limits, documented in the README's flag table.
const (
	DefaultMaxValueBytes = 4096
	DefaultMaxDNSNames   = 64
	DefaultMaxURISANs    = 8
	DefaultMinDuration   = time.Minute
	DefaultMaxDuration   = 90 * 24 * time.Hour
	DefaultMaxRSAKeySize = 4096
	// DefaultMinRenewInterval lets the demo renew every 30 s and keeps
	// the issuer's load from a pod at two requests a minute at most.
	DefaultMinRenewInterval = 30 * time.Second
)

// RSAMinKeySize and RSAMaxKeySize bound RSA key sizes whatever the flags say:
// below 2048 bits is broken, above 8192 is refused by cert-manager.
const (
	RSAMinKeySize = 2048
	RSAMaxKeySize = 8192
)

// NewLimits returns the default limits.
func NewLimits() Limits {
	return Limits{
		MaxValueBytes: DefaultMaxValueBytes,
		MaxDNSNames:   DefaultMaxDNSNames,
		MaxURISANs:    DefaultMaxURISANs,
		MinDuration:   DefaultMinDuration,
		MaxDuration:   DefaultMaxDuration,
		MaxRSAKeySize: DefaultMaxRSAKeySize,

		MinRenewInterval: DefaultMinRenewInterval,
	}
}

// WithDefaults fills the zero fields of l with the defaults.
func (l Limits) WithDefaults() Limits {
	d := NewLimits()
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = d.MaxValueBytes
	}
	if l.MaxDNSNames <= 0 {
		l.MaxDNSNames = d.MaxDNSNames
	}
	if l.MaxURISANs <= 0 {
		l.MaxURISANs = d.MaxURISANs
	}
	if l.MinDuration <= 0 {
		l.MinDuration = d.MinDuration
	}
	if l.MaxDuration <= 0 {
		l.MaxDuration = d.MaxDuration
	}
	if l.MaxRSAKeySize <= 0 {
		l.MaxRSAKeySize = d.MaxRSAKeySize
	}
	if l.MinRenewInterval <= 0 {
		l.MinRenewInterval = d.MinRenewInterval
	}
	return l
}

// Validate reports limits that contradict each other or what the driver and
// cert-manager accept, each naming its flag.
func (l Limits) Validate() []error {
	var errs []error
	if l.MinDuration < time.Minute {
		errs = append(errs, fmt.Errorf("--min-duration=%s: must be at least 1m0s: shorter certificates keep the issuer re-signing", l.MinDuration))
	}
	if l.MaxDuration < l.MinDuration {
		errs = append(errs, fmt.Errorf("--max-duration=%s: must not be shorter than --min-duration=%s", l.MaxDuration, l.MinDuration))
	}
	if l.MinRenewInterval < time.Second {
		errs = append(errs, fmt.Errorf("--min-renew-interval=%s: must be at least 1s", l.MinRenewInterval))
	}
	if l.MinRenewInterval > l.MinDuration*2/3 {
		errs = append(errs, fmt.Errorf("--min-renew-interval=%s: must be at most two thirds of --min-duration=%s (%s), or a certificate of the shortest allowed lifetime could never be renewed in time", l.MinRenewInterval, l.MinDuration, l.MinDuration*2/3))
	}
	if l.MaxRSAKeySize < RSAMinKeySize || l.MaxRSAKeySize > RSAMaxKeySize {
		errs = append(errs, fmt.Errorf("--max-rsa-key-size=%d: must be %d to %d", l.MaxRSAKeySize, RSAMinKeySize, RSAMaxKeySize))
	}
	if l.MaxURISANs < 1 {
		errs = append(errs, fmt.Errorf("--max-uri-sans=%d: must be at least 1, for the pod's SPIFFE ID", l.MaxURISANs))
	}
	if l.MaxValueBytes < 256 {
		errs = append(errs, fmt.Errorf("--max-annotation-bytes=%d: must be at least 256", l.MaxValueBytes))
	}
	return errs
}
