package gateway

import (
	"strings"

	"ai-proxy/harness/bootstrap"
)

// findRoute picks the virtual host for host (the :authority) and the first of
// its routes matching path (the :path), as Envoy's route table does. It
// returns nil when no virtual host or no route matches.
//
// Virtual host order is Envoy's: an exact domain, then the longest "*suffix"
// wildcard, then the longest "prefix*" wildcard, then "*". Matching is
// case-insensitive and includes the port, unless ignorePort is set
// (route_config.ignore_port_in_host_matching).
func findRoute(vhosts []*bootstrap.VirtualHost, host, path string, ignorePort bool) (*bootstrap.VirtualHost, *bootstrap.Route) {
	host = strings.ToLower(host)
	if ignorePort {
		host = hostWithoutPort(host)
	}
	vh := findVirtualHost(vhosts, host)
	if vh == nil {
		return nil, nil
	}
	for _, r := range vh.Routes {
		if r.Matches(path) {
			return vh, r
		}
	}
	return vh, nil
}

func findVirtualHost(vhosts []*bootstrap.VirtualHost, host string) *bootstrap.VirtualHost {
	var suffix, prefix, any *bootstrap.VirtualHost
	suffixLen, prefixLen := -1, -1
	for _, vh := range vhosts {
		for _, d := range vh.Domains {
			switch {
			case d == "*":
				if any == nil {
					any = vh
				}
			case d == host:
				return vh
			case strings.HasPrefix(d, "*"):
				s := d[1:]
				if len(host) > len(s) && strings.HasSuffix(host, s) && len(s) > suffixLen {
					suffix, suffixLen = vh, len(s)
				}
			case strings.HasSuffix(d, "*"):
				p := d[:len(d)-1]
				if len(host) > len(p) && strings.HasPrefix(host, p) && len(p) > prefixLen {
					prefix, prefixLen = vh, len(p)
				}
			}
		}
	}
	switch {
	case suffix != nil:
		return suffix
	case prefix != nil:
		return prefix
	}
	return any
}
