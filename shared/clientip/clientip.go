// Package clientip finds the address of the client behind a request: the
// connection's peer, or, when that peer is a trusted proxy, the right-most
// address in X-Forwarded-For that is not a trusted proxy. Addresses a client
// writes into the header itself are never believed.
package clientip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/cloudphone/cloudphone/shared/config"
)

// EnvTrustedProxies names the environment variable holding the trusted proxy
// list: comma-separated CIDR ranges or single addresses.
const EnvTrustedProxies = "CLOUDPHONE_TRUSTED_PROXIES"

// Resolver resolves client addresses against a fixed list of trusted proxies.
// The zero Resolver trusts nobody. Safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a resolver trusting the given CIDR ranges or addresses
// ("10.0.0.0/8", "192.0.2.7", "fd00::/8"). A malformed entry is an error.
func New(trusted []string) (*Resolver, error) {
	ps, err := ParsePrefixes(trusted)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	return &Resolver{trusted: ps}, nil
}

// Load returns a resolver for the list in CLOUDPHONE_TRUSTED_PROXIES (none
// trusted when unset).
func Load(src config.Source) (*Resolver, error) {
	raw, _ := src.Lookup(EnvTrustedProxies)
	var list []string
	for p := range strings.SplitSeq(raw, ",") {
		if p = strings.TrimSpace(p); p != "" {
			list = append(list, p)
		}
	}
	return New(list)
}

// ParsePrefixes parses CIDR ranges and single addresses (as /32 or /128),
// masked and with IPv4-mapped IPv6 unmapped.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := ParsePrefix(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// ParsePrefix parses one CIDR range or single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR range: %w", s, err)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address: %w", s, err)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	if r == nil {
		return false
	}
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address: the peer of the connection
// (r.RemoteAddr) unless the peer is trusted; then X-Forwarded-For is read from
// the right, skipping trusted proxies, and the first untrusted address is the
// client. If every entry is trusted the left-most one is returned. An entry
// that does not parse ends the walk: the nearest hop to its right (a trusted
// proxy) is returned, because anything at or left of a malformed entry may have
// been written by the client. The result is unmapped and without zone; it is
// invalid only when RemoteAddr is not an address.
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer := parseHost(req.RemoteAddr)
	if !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	client := peer
	values := req.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var entry string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				entry, v = v, ""
			}
			entry = strings.TrimSpace(entry)
			if entry == "" {
				continue
			}
			a := parseHost(entry)
			if !a.IsValid() {
				return client
			}
			client = a
			if !r.Trusted(a) {
				return a
			}
		}
	}
	return client
}

// parseHost parses "addr", "addr:port", "[v6]:port" or "[v6]".
func parseHost(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return a.Unmap().WithZone("")
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			return a.Unmap().WithZone("")
		}
	}
	return netip.Addr{}
}

// Key returns the string a limiter or ban list keys a client by: an IPv4
// address as itself, an IPv6 address as its /64 ("2001:db8:1:2::/64"),
// because one subscriber usually holds a whole /64. An invalid address keys
// as "unknown".
func Key(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// KeyPrefix returns the range Key stands for: a /32 for IPv4, the /64 for
// IPv6.
func KeyPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
