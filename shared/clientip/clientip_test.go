package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/cloudphone/cloudphone/shared/config"
)

// TestClientIPTrustsForwardedForOnlyFromTrustedProxies is the table of
// X-Forwarded-For cases: spoofing from an untrusted peer, chains of trusted
// proxies, malformed entries, ports, IPv6 and several header lines.
func TestClientIPTrustsForwardedForOnlyFromTrustedProxies(t *testing.T) {
	t.Parallel()
	r, err := New([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"untrusted peer, no header", "203.0.113.5:1234", nil, "203.0.113.5"},
		{"untrusted peer spoofs the header", "203.0.113.5:1234", []string{"1.2.3.4"}, "203.0.113.5"},
		{"trusted peer, one hop", "10.1.1.1:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client-written entries left of the real client are ignored", "10.1.1.1:80", []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"chain of trusted proxies is skipped", "10.1.1.1:80", []string{"6.6.6.6, 203.0.113.7, 192.0.2.10, 10.9.9.9"}, "203.0.113.7"},
		{"several header lines read right to left", "10.1.1.1:80", []string{"6.6.6.6", "203.0.113.7, 10.2.2.2"}, "203.0.113.7"},
		{"every entry trusted: left-most", "10.1.1.1:80", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"trusted peer without header", "10.1.1.1:80", nil, "10.1.1.1"},
		{"malformed right-most entry: the peer", "10.1.1.1:80", []string{"203.0.113.7, garbage"}, "10.1.1.1"},
		{"malformed entry behind a trusted hop: that hop", "10.1.1.1:80", []string{"6.6.6.6, not-an-ip, 10.2.2.2"}, "10.2.2.2"},
		{"empty entries are skipped", "10.1.1.1:80", []string{"203.0.113.7, , "}, "203.0.113.7"},
		{"entry with a port", "10.1.1.1:80", []string{"203.0.113.7:5555"}, "203.0.113.7"},
		{"bracketed IPv6 with port", "10.1.1.1:80", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"IPv6 peer and chain", "[fd00::1]:80", []string{"2001:db8::2, fd00::9"}, "2001:db8::2"},
		{"IPv4-mapped peer is unmapped", "[::ffff:10.1.1.1]:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"unknown token (RFC 7239 style)", "10.1.1.1:80", []string{"unknown"}, "10.1.1.1"},
		{"peer without port", "203.0.113.5", nil, "203.0.113.5"},
		{"unparsable peer", "pipe", []string{"1.2.3.4"}, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				req.Header.Add("X-Forwarded-For", v)
			}
			if got := r.ClientIP(req).String(); got != tc.want {
				t.Fatalf("ClientIP = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestZeroResolverTrustsNobody checks that without configuration the header
// is ignored.
func TestZeroResolverTrustsNobody(t *testing.T) {
	t.Parallel()
	r, err := Load(config.FromMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "127.0.0.1:9"
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	if got := r.ClientIP(req).String(); got != "127.0.0.1" {
		t.Fatalf("ClientIP = %s", got)
	}
}

func TestLoadRejectsMalformedProxyList(t *testing.T) {
	t.Parallel()
	if _, err := Load(config.FromMap(map[string]string{EnvTrustedProxies: "10.0.0.0/8, nonsense"})); err == nil {
		t.Fatal("no error for a malformed entry")
	}
	r, err := Load(config.FromMap(map[string]string{EnvTrustedProxies: " 10.0.0.0/8 ,192.0.2.1,::ffff:198.51.100.0/120"}))
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{"10.200.0.1": true, "192.0.2.1": true, "192.0.2.2": false, "198.51.100.77": true} {
		if got := r.Trusted(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Trusted(%s) = %v", addr, got)
		}
	}
}

// TestKeyGroupsIPv6ByPrefix64 checks the limiter key of an address.
func TestKeyGroupsIPv6ByPrefix64(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
	} {
		if got := Key(netip.MustParseAddr(in)); got != want {
			t.Errorf("Key(%s) = %s, want %s", in, got, want)
		}
	}
	if got := Key(netip.Addr{}); got != "unknown" {
		t.Errorf("Key(invalid) = %s", got)
	}
}
