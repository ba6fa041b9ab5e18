package issuer

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/storage"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// RFC 8628: the device authorization grant, for kubectl on an SSH host or
// in WSL where no browser can reach a loopback listener.

// userCodeAlphabet has no vowels (no words) and no look-alikes (RFC 8628 6.1).
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

const devicePollInterval = 5 * time.Second

func newUserCode() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	out := make([]byte, 8)
	for i, c := range b {
		// 256 is not a multiple of 20: reject the biased tail.
		for c >= 240 {
			var one [1]byte
			if _, err := rand.Read(one[:]); err != nil {
				panic(err)
			}
			c = one[0]
		}
		out[i] = userCodeAlphabet[int(c)%len(userCodeAlphabet)]
	}
	return string(out)
}

// normaliseUserCode upper-cases and drops separators and spaces, so
// "bcdf-ghjk" and "BCDF GHJK" both match.
func normaliseUserCode(v string) string {
	var b strings.Builder
	for _, c := range strings.ToUpper(v) {
		if strings.ContainsRune(userCodeAlphabet, c) {
			b.WriteRune(c)
		} else if c != '-' && c != ' ' {
			return ""
		}
	}
	return b.String()
}

func formatUserCode(c string) string {
	if len(c) != 8 {
		return c
	}
	return c[:4] + "-" + c[4:]
}

type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// handleDeviceCode is the device authorization endpoint (RFC 8628 3.1).
func (s *Server) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, errInvalidRequest, "the body must be application/x-www-form-urlencoded")
		return
	}
	client, terr := s.authenticateClient(r)
	if terr != nil {
		writeOAuthError(w, terr.status, terr.code, terr.description)
		return
	}
	if !s.grantAllowed(client, GrantDeviceCode) {
		writeOAuthError(w, http.StatusBadRequest, errUnauthorizedClient, "this client may not use the device code grant")
		return
	}
	scopes := strings.Fields(r.PostForm.Get("scope"))
	if len(scopes) == 0 {
		scopes = []string{scopeOpenID}
	}
	if e := s.validateScopes(client, scopes); e != nil {
		writeOAuthError(w, http.StatusBadRequest, e.code, e.description)
		return
	}
	deviceCode := randomToken(32)
	now := s.now()
	d := storage.DeviceRequest{
		DeviceCodeHash: sha256Hex(deviceCode), ClientID: client.ID, Scopes: scopes,
		Expiry: now.Add(s.opts.Expiry.DeviceRequests), Interval: devicePollInterval, Status: storage.DevicePending,
	}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		d.UserCode = newUserCode()
		if err = s.opts.Storage.CreateDeviceRequest(r.Context(), d); !errors.Is(err, storage.ErrAlreadyExists) {
			break
		}
	}
	if err != nil {
		s.log.Error("create device request", "err", err)
		writeOAuthError(w, http.StatusInternalServerError, errServerError, "internal error")
		return
	}
	verify := s.absURL("/device")
	writeJSON(w, http.StatusOK, deviceAuthResponse{
		DeviceCode: deviceCode, UserCode: formatUserCode(d.UserCode), VerificationURI: verify,
		VerificationURIComplete: verify + "?user_code=" + url.QueryEscape(formatUserCode(d.UserCode)),
		ExpiresIn:               int64(s.opts.Expiry.DeviceRequests.Seconds()), Interval: int64(devicePollInterval.Seconds()),
	})
}

// grantDeviceCode is the device's polling (RFC 8628 3.4, 3.5).
func (s *Server) grantDeviceCode(r *http.Request, client *Client) (issuedTokens, error) {
	code := r.PostForm.Get("device_code")
	if code == "" {
		return issuedTokens{}, badRequest(errInvalidRequest, "device_code is required")
	}
	now := s.now()
	var got storage.DeviceRequest
	var pollErr *tokenError
	err := s.opts.Storage.UpdateDeviceRequest(r.Context(), sha256Hex(code), func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		pollErr = nil
		if d.ClientID != client.ID {
			return d, badRequest(errInvalidGrant, "the device code was issued to another client")
		}
		if now.After(d.Expiry) {
			return d, badRequest(errExpiredToken, "the device code expired; start again")
		}
		switch d.Status {
		case storage.DevicePending:
			if !d.LastPoll.IsZero() && now.Sub(d.LastPoll) < d.Interval {
				d.Interval += 5 * time.Second
				pollErr = badRequest(errSlowDown, "polling too fast; wait the interval between requests")
			} else {
				pollErr = badRequest(errAuthorizationPending, "the user has not finished logging in yet")
			}
			d.LastPoll = now
		case storage.DeviceDenied:
			reason := "the user denied the request"
			if len(d.ConnectorData) > 0 {
				reason = string(d.ConnectorData) // see refuseDevice
			}
			return d, badRequest(errAccessDenied, reason)
		case storage.DeviceApproved:
			d.Status = storage.DeviceRedeemed
		default:
			return d, badRequest(errInvalidGrant, "the device code was already used")
		}
		got = d
		return d, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return issuedTokens{}, badRequest(errInvalidGrant, "unknown or expired device code")
	}
	if err != nil {
		return issuedTokens{}, err
	}
	if pollErr != nil {
		return issuedTokens{}, pollErr
	}
	if !clientAllowsConnector(client, got.ConnectorID) {
		return issuedTokens{}, badRequest(errInvalidGrant, "this client may not use the connector that authenticated the user")
	}
	p := tokenParams{
		clientID: client.ID, connectorID: got.ConnectorID, scopes: got.Scopes, nonce: got.Nonce,
		claims: got.Claims, authTime: got.AuthTime,
	}
	refresh := ""
	if slices.Contains(got.Scopes, scopeOfflineAccess) && s.grantAllowed(client, GrantRefreshToken) {
		p.familyID = randomToken(16)
		if refresh, err = s.createFamily(r, p, got.ConnectorData); err != nil {
			return issuedTokens{}, err
		}
	}
	return s.mint(r.Context(), p, refresh)
}

// handleDevicePage shows the user-code form.
func (s *Server) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, web.PageDevice, "Log in a device", web.DeviceData{
		PostURL: s.path("/device"), UserCode: r.URL.Query().Get("user_code"),
	})
}

// handleDeviceSubmit takes a user code and starts a browser login for it.
func (s *Server) handleDeviceSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	raw := r.PostForm.Get("user_code")
	again := func(status int, msg string) {
		s.render(w, status, web.PageDevice, "Log in a device", web.DeviceData{PostURL: s.path("/device"), UserCode: raw, Error: msg})
	}
	// User codes are short: limit wrong guesses per IP.
	att, wait, err := s.limiter.begin(r.Context(), deviceKey(s.opts.ClientIP(r)))
	if err != nil {
		return // the browser went away while waiting
	}
	if att == nil {
		w.Header().Set("Retry-After", formatSeconds(wait))
		again(http.StatusTooManyRequests, "Too many wrong codes. Wait "+formatSeconds(wait)+" seconds and try again.")
		return
	}
	defer att.end(false)
	code := normaliseUserCode(raw)
	if len(code) != 8 {
		att.end(true)
		again(http.StatusBadRequest, "That is not a valid code. Codes look like BCDF-GHJK.")
		return
	}
	d, err := s.opts.Storage.GetDeviceRequestByUserCode(r.Context(), code)
	if err != nil || d.Status != storage.DevicePending || s.now().After(d.Expiry) {
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("load device request", "err", err)
		} else {
			att.end(true)
		}
		again(http.StatusNotFound, "That code is unknown or has expired. Check the code on your device, or start again there.")
		return
	}
	client := s.clients[d.ClientID]
	if client == nil {
		again(http.StatusNotFound, "That code belongs to an application that is no longer registered.")
		return
	}
	req := storage.AuthRequest{
		ID: randomToken(24), ClientID: d.ClientID, ResponseTypes: []string{"code"}, Scopes: d.Scopes,
		RedirectURI: s.absURL("/device/callback"), State: d.DeviceCodeHash, MaxAge: -1,
		HMACKey: []byte(randomToken(32)), ClientIP: s.opts.ClientIP(r), Expiry: d.Expiry,
	}
	if err := s.opts.Storage.CreateAuthRequest(r.Context(), req); err != nil {
		s.log.Error("create auth request", "err", err)
		again(http.StatusServiceUnavailable, "The login could not be started. Try again in a moment.")
		return
	}
	s.bindToBrowser(w, req)
	s.chooseConnector(w, r, client, req, "")
}

// approveDevice records a completed browser login on the device request.
func (s *Server) approveDevice(w http.ResponseWriter, r *http.Request, req storage.AuthRequest) {
	err := s.opts.Storage.UpdateDeviceRequest(r.Context(), req.State, func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		if d.Status != storage.DevicePending {
			return d, errDeviceNotPending
		}
		d.Status = storage.DeviceApproved
		d.ConnectorID, d.ConnectorData, d.Claims, d.AuthTime = req.ConnectorID, req.ConnectorData, req.Claims, req.AuthTime
		return d, nil
	})
	if err != nil {
		if !errors.Is(err, errDeviceNotPending) && !errors.Is(err, storage.ErrNotFound) {
			s.log.Error("approve device request", "err", err)
		}
		s.renderError(w, r, http.StatusBadRequest, "Code expired", "This device code has expired or was already used. Start again on your device.")
		return
	}
	s.render(w, http.StatusOK, web.PageDone, "Logged in", web.DoneData{
		Heading: "You are logged in", Message: "Return to your device or terminal: it will continue on its own. You can close this window.",
	})
}

var errDeviceNotPending = errors.New("device request is not pending")

func (s *Server) denyDevice(w http.ResponseWriter, r *http.Request, req storage.AuthRequest) {
	_ = s.opts.Storage.UpdateDeviceRequest(r.Context(), req.State, func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		if d.Status == storage.DevicePending {
			d.Status = storage.DeviceDenied
		}
		return d, nil
	})
	s.render(w, http.StatusOK, web.PageDone, "Cancelled", web.DoneData{
		Heading: "Request cancelled", Message: "The device was not given access. You can close this window.",
	})
}

// refuseDevice ends a device login that its connector refused: the
// device's next poll gets access_denied with reason as error_description.
// A denied request has no connector state to keep, so its ConnectorData
// holds the reason.
func (s *Server) refuseDevice(r *http.Request, req storage.AuthRequest, reason string) {
	err := s.opts.Storage.UpdateDeviceRequest(r.Context(), req.State, func(d storage.DeviceRequest) (storage.DeviceRequest, error) {
		if d.Status != storage.DevicePending {
			return d, errDeviceNotPending
		}
		d.Status = storage.DeviceDenied
		d.ConnectorData = []byte(reason)
		return d, nil
	})
	if err != nil && !errors.Is(err, errDeviceNotPending) && !errors.Is(err, storage.ErrNotFound) {
		s.log.Error("refuse device request", "err", err)
	}
}

// formatSeconds is a wait in whole seconds, rounded up, at least 1 (for
// Retry-After and messages).
func formatSeconds(d time.Duration) string {
	return strconv.Itoa(max(int((d+time.Second-1)/time.Second), 1))
}
