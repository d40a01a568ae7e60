package notification

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// refusedPrefixes are ranges no webhook may reach besides what the netip
// predicates below catch: shared address space (carrier-grade NAT, where
// some clouds put their metadata service), IETF protocol assignments,
// benchmarking, reserved and the NAT64 well-known prefix (which embeds
// an IPv4 address).
var refusedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// AllowedIP reports whether a webhook may be delivered to ip: only public
// unicast addresses are, never loopback, private (RFC 1918, fc00::/7),
// link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10),
// multicast, unspecified or the ranges above. allowLoopback admits loopback
// addresses and nothing more (tests).
func AllowedIP(ip netip.Addr, allowLoopback bool) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.Zone() != "" && !ip.IsLoopback() {
		return false
	}
	if ip.IsLoopback() {
		return allowLoopback
	}
	if !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range refusedPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// ErrRefusedAddress is the cause of a delivery whose connection would have
// gone to an address AllowedIP refuses.
var ErrRefusedAddress = errors.New("address refused for webhooks (loopback, private, link-local or metadata)")

// webhookClient posts deliveries. Its dialer checks the address actually
// dialed, after DNS resolution, so a name that resolved to a public address
// at registration and to a private one now (DNS rebinding) is refused;
// redirects are not followed and no proxy is used.
type webhookClient struct {
	http          *http.Client
	timeout       time.Duration
	allowLoopback bool
	resolver      *net.Resolver
}

func newWebhookClient(timeout time.Duration, allowLoopback bool) *webhookClient {
	c := &webhookClient{timeout: timeout, allowLoopback: allowLoopback, resolver: net.DefaultResolver}
	dialer := &net.Dialer{
		Timeout: timeout,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("dial %s: %w", address, ErrRefusedAddress)
			}
			if !AllowedIP(ap.Addr(), allowLoopback) {
				return fmt.Errorf("dial %s: %w", address, ErrRefusedAddress)
			}
			return nil
		},
	}
	c.http = &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// resolve returns the addresses of host (itself when it is an address).
func (c *webhookClient) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{ip}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := c.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("no address for %s", host)
	}
	return addrs, nil
}
