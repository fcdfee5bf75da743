package policy

import (
	"strings"
	"testing"

	"github.com/mtls-demo/mtls-webhook/pkg/annotations"
)

// shop is a pod of a Deployment: named from generateName only.
var shop = annotations.Identity{GenerateName: "web-5d4c-", Namespace: "shop", ServiceAccount: "web"}

// web0 is a StatefulSet pod: named at creation.
var web0 = annotations.Identity{Name: "web-0", Namespace: "shop", ServiceAccount: "web"}

const ownTemplate = "spiffe://cluster.local/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}"

func testPolicy(t *testing.T, mutate ...func(*Policy)) Policy {
	t.Helper()
	p, err := New(nil, false, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func grantDNS(specs ...string) func(*Policy) {
	return func(p *Policy) {
		for _, s := range specs {
			g, err := ParseDNSGrant(s)
			if err != nil {
				panic(err)
			}
			p.AllowedDNSNames = append(p.AllowedDNSNames, g)
		}
	}
}

func allowURIs(globs ...string) func(*Policy) {
	return func(p *Policy) {
		for _, s := range globs {
			g, err := ParseURIGlob(s)
			if err != nil {
				panic(err)
			}
			p.AllowedURISANs = append(p.AllowedURISANs, g)
		}
	}
}

func allowCN(p *Policy) { p.AllowCommonName = true }

func TestCheckNames(t *testing.T) {
	tests := map[string]struct {
		id     annotations.Identity
		policy []func(*Policy)
		names  Names
		// field is the annotation the error must be on ("" = allowed);
		// want are texts the message must hold: the value and the rule.
		field string
		want  []string
	}{
		// 1. URI SANs
		"the pod's own SPIFFE ID is allowed": {
			names: Names{URIs: []string{ownTemplate}},
		},
		"the pod's own SPIFFE ID written out is allowed": {
			names: Names{URIs: []string{ownTemplate, "spiffe://cluster.local/ns/shop/sa/web"}},
		},
		"another namespace's SPIFFE ID is refused": {
			names: Names{URIs: []string{ownTemplate, "spiffe://cluster.local/ns/bank/sa/frontend"}},
			field: annotations.URISANs,
			want:  []string{"spiffe://cluster.local/ns/bank/sa/frontend", "a pod's only SPIFFE ID is its own, spiffe://cluster.local/ns/shop/sa/web", "--trust-domain"},
		},
		"a SPIFFE ID of another trust domain is refused": {
			names: Names{URIs: []string{ownTemplate, "spiffe://corp.example/ns/${POD_NAMESPACE}/sa/${SERVICE_ACCOUNT_NAME}"}},
			field: annotations.URISANs,
			want:  []string{`expands to "spiffe://corp.example/ns/shop/sa/web" for this pod`, "no other spiffe:// URI"},
		},
		"a SPIFFE ID in capitals is still a SPIFFE ID": {
			names: Names{URIs: []string{ownTemplate, "SPIFFE://cluster.local/ns/bank/sa/x"}},
			field: annotations.URISANs, want: []string{"no other spiffe:// URI"},
		},
		"the service account from the pod name is refused while the name is unknown": {
			names: Names{URIs: []string{ownTemplate, "spiffe://cluster.local/ns/shop/sa/${POD_NAME}"}},
			field: annotations.URISANs, want: []string{"web-5d4c- plus the 5 characters the API server picks"},
		},
		"a URN is refused without --allowed-uri-sans": {
			names: Names{URIs: []string{ownTemplate, "urn:shop:web"}},
			field: annotations.URISANs, want: []string{"urn:shop:web", "--allowed-uri-sans (none allowed)"},
		},
		"a URN an admin's glob allows": {
			policy: []func(*Policy){allowURIs("urn:${POD_NAMESPACE}:*")},
			names:  Names{URIs: []string{ownTemplate, "urn:${POD_NAMESPACE}:${SERVICE_ACCOUNT_NAME}"}},
		},
		"an admin's glob is expanded for the pod, not for another namespace": {
			policy: []func(*Policy){allowURIs("urn:${POD_NAMESPACE}:*")},
			names:  Names{URIs: []string{ownTemplate, "urn:bank:web"}},
			field:  annotations.URISANs, want: []string{"urn:${POD_NAMESPACE}:*"},
		},
		"a glob's star covers the unknown UID": {
			policy: []func(*Policy){allowURIs("urn:pod:*")},
			names:  Names{URIs: []string{ownTemplate, "urn:pod:${POD_UID}"}},
		},
		"a glob's literal cannot stand in for the unknown UID": {
			policy: []func(*Policy){allowURIs("urn:pod:00000000-0000-0000-0000-000000000000")},
			names:  Names{URIs: []string{ownTemplate, "urn:pod:${POD_UID}"}},
			field:  annotations.URISANs, want: []string{"${POD_UID} is not known"},
		},
		"a glob's star does not cross a slash": {
			policy: []func(*Policy){allowURIs("https://id.example/${POD_NAMESPACE}/*")},
			names:  Names{URIs: []string{ownTemplate, "https://id.example/shop/a/b"}},
			field:  annotations.URISANs,
		},

		// 2. Common name
		"a common name is refused without --allow-common-name": {
			names: Names{CommonName: "admin", DNSNames: []string{"admin.shop.svc"}},
			field: annotations.CommonName, want: []string{`"admin"`, "--allow-common-name"},
		},
		"an allowed common name equal to a DNS name of the pod": {
			policy: []func(*Policy){allowCN},
			names:  Names{CommonName: "web.${POD_NAMESPACE}.svc", DNSNames: []string{"web.shop", "web.shop.svc"}},
		},
		"an allowed common name equal to the pod's SPIFFE ID": {
			policy: []func(*Policy){allowCN},
			names:  Names{CommonName: "spiffe://cluster.local/ns/shop/sa/web", URIs: []string{ownTemplate}},
		},
		"an allowed common name that is none of the pod's names": {
			policy: []func(*Policy){allowCN},
			names:  Names{CommonName: "postgres", DNSNames: []string{"web.shop"}},
			field:  annotations.CommonName, want: []string{`"postgres"`, "one of the certificate's own DNS names or its SPIFFE ID spiffe://cluster.local/ns/shop/sa/web"},
		},
		"a pod-name common name equal to a pod-name DNS name": {
			policy: []func(*Policy){allowCN},
			names:  Names{CommonName: "${POD_NAME}.shop.svc", DNSNames: []string{"${POD_NAME}.shop.svc"}},
		},

		// 3. DNS names after expansion
		"a pod name with dots cannot reach another namespace": {
			id:    annotations.Identity{Name: "x.bank.svc.cluster", Namespace: "shop", ServiceAccount: "web"},
			names: Names{DNSNames: []string{"${POD_NAME}.local"}},
			field: annotations.DNSNames, want: []string{`expands to "x.bank.svc.cluster.local" for this pod`, "L is exactly one label"},
		},
		"a generated pod name is one label": {
			names: Names{DNSNames: []string{"${POD_NAME}.${POD_NAMESPACE}.svc"}},
		},
		"a StatefulSet pod's name": {
			id:    web0,
			names: Names{DNSNames: []string{"${POD_NAME}.shop.svc.cluster.local"}},
		},
		"the service account cannot be a second label either": {
			id:    annotations.Identity{GenerateName: "w-", Namespace: "shop", ServiceAccount: "bank.svc"},
			names: Names{DNSNames: []string{"api.${SERVICE_ACCOUNT_NAME}"}},
			field: annotations.DNSNames, want: []string{`"api.bank.svc"`},
		},

		// 4. The forms
		"every form of the namespace's own zone": {
			names: Names{DNSNames: []string{"web.shop", "web.shop.svc", "web.shop.svc.cluster.local", "*.shop.svc.cluster.local"}},
		},
		"a bare label any namespace could claim": {
			names: Names{DNSNames: []string{"payments"}},
			field: annotations.DNSNames, want: []string{`"payments"`, "a bare label (web, localhost) is not given without a grant, since a pod of any namespace could claim it"},
		},
		"localhost": {
			names: Names{DNSNames: []string{"web.shop", "localhost"}},
			field: annotations.DNSNames, want: []string{`"localhost"`},
		},
		"a bare label from a template": {
			names: Names{DNSNames: []string{"${POD_NAME}"}},
			field: annotations.DNSNames, want: []string{"web-5d4c- plus the 5 characters"},
		},
		"a bare label an admin grants the namespace": {
			policy: []func(*Policy){grantDNS("shop=payments")},
			names:  Names{DNSNames: []string{"payments"}},
		},
		"a bare label granted to another namespace": {
			policy: []func(*Policy){grantDNS("bank=payments")},
			names:  Names{DNSNames: []string{"payments"}},
			field:  annotations.DNSNames, want: []string{`"payments"`},
		},
		"two labels in front of the namespace": {
			names: Names{DNSNames: []string{"login.bank.shop"}},
			field: annotations.DNSNames, want: []string{`"login.bank.shop"`, "a DNS name must be L.shop, L.shop.svc or L.shop.svc.cluster.local, where L is exactly one label; the only wildcard is *.shop.svc.cluster.local"},
		},
		"a namespace called svc cannot claim another namespace's Services": {
			id:    annotations.Identity{GenerateName: "x-", Namespace: "svc", ServiceAccount: "default"},
			names: Names{DNSNames: []string{"backend.prod.svc.cluster.local"}},
			field: annotations.DNSNames,
		},
		"a namespace called local cannot claim the cluster's wildcard": {
			id:    annotations.Identity{GenerateName: "x-", Namespace: "local", ServiceAccount: "default"},
			names: Names{DNSNames: []string{"*.svc.cluster.local"}},
			field: annotations.DNSNames,
		},
		"a namespace called com cannot claim a public name": {
			id:    annotations.Identity{GenerateName: "x-", Namespace: "com", ServiceAccount: "default"},
			names: Names{DNSNames: []string{"login.bank.com"}},
			field: annotations.DNSNames,
		},
		"a wildcard other than the Service zone": {
			names: Names{DNSNames: []string{"*.shop", "*.web.shop.svc"}},
			field: annotations.DNSNames,
		},
		"another namespace's Service": {
			names: Names{DNSNames: []string{"web.bank.svc"}},
			field: annotations.DNSNames, want: []string{"other names need an admin's --allowed-dns-names grant for namespace shop"},
		},
		"a name an admin grants the namespace": {
			policy: []func(*Policy){grantDNS("shop=*.shop.example.com")},
			names:  Names{DNSNames: []string{"api.shop.example.com", "*.shop.example.com"}},
		},
		"a grant's star stays within one label": {
			policy: []func(*Policy){grantDNS("shop=*.shop.example.com")},
			names:  Names{DNSNames: []string{"a.b.shop.example.com"}},
			field:  annotations.DNSNames, want: []string{"--allowed-dns-names grants namespace shop: *.shop.example.com"},
		},
		"a grant for another namespace does not apply": {
			policy: []func(*Policy){grantDNS("bank=*.bank.example.com")},
			names:  Names{DNSNames: []string{"login.bank.example.com"}},
			field:  annotations.DNSNames,
		},
		"a grant for every namespace, with the namespace in it": {
			policy: []func(*Policy){grantDNS("*=${POD_NAMESPACE}.apps.example.com")},
			names:  Names{DNSNames: []string{"shop.apps.example.com"}},
		},
		"a grant must cover the unknown suffix of a generated name with a wildcard": {
			policy: []func(*Policy){grantDNS("shop=web-5d4c-xxxxx.example.com")},
			names:  Names{DNSNames: []string{"${POD_NAME}.example.com"}},
			field:  annotations.DNSNames, want: []string{"web-5d4c- plus the 5 characters"},
		},
		"--allow-any-dns-names lifts the forms": {
			policy: []func(*Policy){func(p *Policy) { p.AllowAnyDNSNames = true }},
			names:  Names{DNSNames: []string{"login.bank.com"}},
		},

		// 6. Limits
		"derived names past --max-dns-names": {
			policy: []func(*Policy){func(p *Policy) { p.MaxDNSNames = 2 }},
			names:  Names{DNSNames: []string{"a", "b", "c"}, DNSDerived: true},
			field:  annotations.DNSNames, want: []string{"the Services that select this pod give 3 DNS names", "--max-dns-names", "list the ones it needs in mtls.demo/dns-names"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := tc.id
			if id == (annotations.Identity{}) {
				id = shop
			}
			errs := testPolicy(t, tc.policy...).CheckNames(id, tc.names)
			if tc.field == "" {
				if len(errs) > 0 {
					t.Fatalf("refused: %v", errs)
				}
				return
			}
			if len(errs) == 0 {
				t.Fatalf("allowed, want a refusal on %s", tc.field)
			}
			for _, e := range errs {
				if e.Field != annotations.PathFor(tc.field).String() {
					t.Errorf("error on %s, want %s: %v", e.Field, annotations.PathFor(tc.field), e)
				}
			}
			msg := errs.ToAggregate().Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q\ndoes not contain %q", msg, w)
				}
			}
		})
	}
}

func TestBadGlobsAreRefusedAtStartUp(t *testing.T) {
	for _, bad := range []string{"spiffe://cluster.local/*", "SPIFFE://x", "*://x", "urn:[ab]", `urn:\*`, "urn:${POD_NAME}", "no-scheme", "urn: x"} {
		if _, err := ParseURIGlob(bad); err == nil {
			t.Errorf("--allowed-uri-sans glob %q accepted", bad)
		}
	}
	for _, bad := range []string{"*.example.com", "shop", "Shop=*.x", "shop=", "shop=[a].x", "shop=${POD_UID}.x"} {
		if _, err := ParseDNSGrant(bad); err == nil {
			t.Errorf("--allowed-dns-names grant %q accepted", bad)
		}
	}
}

func TestAmbiguousGlobsAreRefusedAtStartUp(t *testing.T) {
	for _, bad := range []string{
		// Namespace a with service account b-c, and namespace a-b with c,
		// both make urn:a-b-c.
		"urn:${POD_NAMESPACE}-${SERVICE_ACCOUNT_NAME}",
		"urn:${POD_NAMESPACE}${SERVICE_ACCOUNT_NAME}",
		"urn:${SERVICE_ACCOUNT_NAME}-${POD_NAMESPACE}",
		// A service account may hold dots, so "." does not end it.
		"urn:${SERVICE_ACCOUNT_NAME}.${SERVICE_ACCOUNT_NAME}",
		// * runs over anything but "/".
		"urn:${POD_NAMESPACE}*",
		"https://x/*-${POD_NAMESPACE}",
	} {
		if _, err := ParseURIGlob(bad); err == nil || !strings.Contains(err.Error(), "is ambiguous") {
			t.Errorf("--allowed-uri-sans glob %q: %v, want it refused as ambiguous", bad, err)
		}
	}
	for _, bad := range []string{"*=${POD_NAMESPACE}-${SERVICE_ACCOUNT_NAME}.example.com", "*=${POD_NAMESPACE}*.example.com"} {
		if _, err := ParseDNSGrant(bad); err == nil || !strings.Contains(err.Error(), "is ambiguous") {
			t.Errorf("--allowed-dns-names grant %q: %v, want it refused as ambiguous", bad, err)
		}
	}
	for _, good := range []string{
		"urn:${POD_NAMESPACE}:${SERVICE_ACCOUNT_NAME}",
		"urn:${POD_NAMESPACE}.${SERVICE_ACCOUNT_NAME}",
		"urn:${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}",
		"https://id.example/${POD_NAMESPACE}/${SERVICE_ACCOUNT_NAME}",
		"urn:shop:${SERVICE_ACCOUNT_NAME}",
		"https://*.example.com/*",
	} {
		if _, err := ParseURIGlob(good); err != nil {
			t.Errorf("--allowed-uri-sans glob %q refused: %v", good, err)
		}
	}
	if _, err := ParseDNSGrant("*=${SERVICE_ACCOUNT_NAME}.${POD_NAMESPACE}.example.com"); err != nil {
		t.Errorf("unambiguous grant refused: %v", err)
	}
}

func TestMatchSegment(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		ok   bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"a*c", "abbbc", true}, {"a*c", "abbbd", false},
		{"?", "", false}, {"a?c", "abc", true}, {"*b*", "aaabaaa", true}, {"*b*", "aaaaaa", false},
		{"web-*", "web-\x00\x00\x00\x00\x00", true}, {"web-xxxxx", "web-\x00\x00\x00\x00\x00", false},
		{"**a", "a", true}, {"", "", true}, {"", "a", false},
	} {
		if got := matchSegment(tc.p, tc.s); got != tc.ok {
			t.Errorf("matchSegment(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.ok)
		}
	}
}
