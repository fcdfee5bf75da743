package certs

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestPermissionErrorsNameTheFix(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/var/run/mtls/tls.key", Err: fs.ErrPermission}
	got := explainRead(denied, 65532, 65532).Error()
	for _, want := range []string{"/var/run/mtls/tls.key", "permission denied", "uid 65532, gid 65532", "securityContext.fsGroup", "mtls.demo/fs-group"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if !errors.Is(explainRead(denied, 1, 1), fs.ErrPermission) {
		t.Error("the explanation hides the permission error from errors.Is")
	}
	missing := &fs.PathError{Op: "open", Path: "tls.key", Err: fs.ErrNotExist}
	if got := explainRead(missing, 1, 1).Error(); got != missing.Error() {
		t.Errorf("a missing file got an explanation: %v", got)
	}
}
