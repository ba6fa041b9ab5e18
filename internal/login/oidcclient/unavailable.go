package oidcclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// UnavailableError is a refresh that the issuer could not do now: it
// answered 429 or a 5xx (gatehouse answers 503 temporarily_unavailable
// while the user's identity provider is down, Dex 500), or it could not
// be reached at all. The issuer did not use up the refresh token: keep it
// and try again later. A refusal (400 invalid_grant) is not one.
type UnavailableError struct {
	// Status is the issuer's HTTP status; 0 when it did not answer.
	Status int
	// Code and Description are the issuer's error and error_description.
	Code, Description string
	// RetryAfter is the issuer's Retry-After; 0 when not given.
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	var b strings.Builder
	switch {
	case e.Status == 0:
		b.WriteString("the issuer cannot be reached")
	case e.Code != "":
		b.WriteString("the issuer answered " + strconv.Itoa(e.Status) + " " + e.Code)
	default:
		b.WriteString("the issuer answered " + strconv.Itoa(e.Status))
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	if e.Status == 0 && e.Err != nil {
		b.WriteString(" (" + e.Err.Error() + ")")
	}
	return b.String()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable returns err as an *UnavailableError when it says that the
// issuer is busy, failing or unreachable, and err otherwise.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		if code != http.StatusTooManyRequests && code < 500 && re.ErrorCode != "temporarily_unavailable" {
			return err
		}
		out := &UnavailableError{Status: code, Code: re.ErrorCode, Description: re.ErrorDescription, Err: err}
		if n, perr := strconv.Atoi(strings.TrimSpace(re.Response.Header.Get("Retry-After"))); perr == nil && n > 0 {
			out.RetryAfter = time.Duration(n) * time.Second
		}
		return out
	}
	var dns *net.DNSError
	var op *net.OpError
	var ne net.Error
	if errors.As(err, &dns) || errors.As(err, &op) || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		return &UnavailableError{Err: err}
	}
	return err
}
