package issuer

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
)

// peerIP is the TCP peer's address: the default client address.
// X-Forwarded-For is not trusted unless the operator configures trusted
// proxies (web.clientRemoteIP): a client could otherwise pick its own
// rate-limit bucket.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// TrustedProxyIP returns a ClientIP function for deployments behind a
// proxy (Dex's web.clientRemoteIP): when the TCP peer is one of the
// trusted proxies, the client is the right-most address in header that is
// not itself a trusted proxy; otherwise the peer. A client that is not a
// trusted proxy cannot choose its own address.
func TrustedProxyIP(header string, trusted []netip.Prefix) func(*http.Request) string {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) string {
		peer := peerIP(r)
		addr, err := netip.ParseAddr(peer)
		if header == "" || err != nil || !isTrusted(addr) {
			return peer
		}
		var hops []string
		for _, v := range r.Header.Values(header) {
			for _, h := range strings.Split(v, ",") {
				hops = append(hops, strings.TrimSpace(h))
			}
		}
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				return peer
			}
			if !isTrusted(a) {
				return a.String()
			}
		}
		return peer
	}
}

// forwardingHeaders are the headers proxies add.
var forwardingHeaders = []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"}

// cgnat is RFC 6598's shared address space, which some Kubernetes
// networks (and cloud load balancers) use for pods and nodes.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// proxyWatch warns once, at the first request that shows it, that the
// issuer is behind what looks like a proxy (a private, loopback or
// shared peer address sending forwarding headers) that
// web.clientRemoteIP does not trust: every client then shares the
// proxy's address for the per-IP login limits and in the logs.
type proxyWatch struct {
	header  string
	trusted []netip.Prefix
	log     *slog.Logger
	warned  atomic.Bool
}

func (p *proxyWatch) check(r *http.Request) {
	if p.warned.Load() {
		return
	}
	sent := ""
	for _, h := range forwardingHeaders {
		if _, ok := r.Header[h]; ok {
			sent = h
			break
		}
	}
	if sent == "" {
		return
	}
	peer, err := netip.ParseAddr(peerIP(r))
	if err != nil {
		return
	}
	peer = peer.Unmap()
	if !peer.IsPrivate() && !peer.IsLoopback() && !cgnat.Contains(peer) {
		return
	}
	for _, t := range p.trusted {
		if t.Contains(peer) {
			return // a trusted proxy: its header is used
		}
	}
	if !p.warned.CompareAndSwap(false, true) {
		return
	}
	if len(p.trusted) == 0 {
		p.log.Warn("requests arrive through a proxy, but web.clientRemoteIP trusts none: every client behind it shares the proxy's address for the per-IP login limits and in the logs; set web.clientRemoteIP.header and trustedProxies to the proxy's addresses (see docs/deploy.md)",
			"peer", peer.String(), "header", sent)
		return
	}
	p.log.Warn("a peer that is not in web.clientRemoteIP.trustedProxies sends forwarding headers: if it is your proxy, add its address, or every client behind it shares its address for the per-IP login limits and in the logs (see docs/deploy.md)",
		"peer", peer.String(), "header", sent, "configured_header", p.header)
}
