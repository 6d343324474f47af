package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vouch-dev/vouch/internal/jobs"
)

// ImageAllow is what addresses the server may fetch images from (vouch
// serve --image-url-allow): networks in CIDR notation, or single addresses.
// Empty: no URL is fetched.
type ImageAllow []netip.Prefix

// ParseImageAllow reads a list of CIDRs or addresses.
func ParseImageAllow(list []string) (ImageAllow, error) {
	var out ImageAllow
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("api: --image-url-allow %q: want a CIDR (10.0.0.0/8) or an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func (a ImageAllow) allows(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// fetchImage downloads an image URL into the image directory, checking the
// address each connection actually goes to (so neither a DNS answer nor a
// redirect leads outside the allowed networks), and the image whole.
func (s *Server) fetchImage(ctx context.Context, raw string) (ImageUpload, error) {
	var up ImageUpload
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return up, errorf(http.StatusBadRequest, "image URL %q: want http(s)://HOST/PATH", raw)
	}
	if len(s.ImageAllow) == 0 {
		return up, errorf(http.StatusBadRequest, "image URL %s: this server fetches no URLs (vouch serve --image-url-allow)", raw)
	}
	if s.ImageDir == "" {
		return up, errorf(http.StatusNotImplemented, "this server keeps no images (no data directory)")
	}
	var refused error
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || !s.ImageAllow.allows(ap.Addr()) {
			refused = fmt.Errorf("image URL %s: address %s is outside what the server may fetch from", raw, address)
			return refused
		}
		return nil
	}}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return up, errorf(http.StatusBadRequest, "image URL %s: %v", raw, err)
	}
	resp, err := cl.Do(req)
	if err != nil {
		if refused != nil {
			return up, errorf(http.StatusBadRequest, "%v", refused)
		}
		return up, errorf(http.StatusBadGateway, "image URL %s: %v", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return up, errorf(http.StatusBadGateway, "image URL %s answered %s", raw, resp.Status)
	}
	if err := os.MkdirAll(s.ImageDir, 0o700); err != nil {
		return up, err
	}
	tmp, err := os.CreateTemp(s.ImageDir, ".fetch-*")
	if err != nil {
		return up, err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, MaxImage+1))
	switch {
	case err != nil:
		return up, errorf(http.StatusBadGateway, "image URL %s: cut off after %d bytes: %v", raw, n, err)
	case n > MaxImage:
		return up, errorf(http.StatusRequestEntityTooLarge, "image URL %s: larger than %d bytes", raw, int64(MaxImage))
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return up, errorf(http.StatusBadGateway, "image URL %s: cut off after %d of %d bytes", raw, n, resp.ContentLength)
	}
	if err := tmp.Close(); err != nil {
		return up, err
	}
	if err := jobs.CheckImage(tmp.Name()); err != nil {
		var ie *jobs.InputError
		if errors.As(err, &ie) {
			return up, errorf(http.StatusBadRequest, "image URL %s: %s", raw, ie.Reason)
		}
		return up, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(s.ImageDir, sum+".img")
	_, statErr := os.Stat(final)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return up, err
	}
	return ImageUpload{Path: final, SHA256: sum, Size: n, fresh: statErr != nil}, nil
}
