package flow

import (
	"crypto/tls"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
)

// localServerTLS loads kubelogin's --local-server-cert/--local-server-key
// for the loopback listener: nil when neither is set. The pair is loaded
// before anything listens, so a bad file fails the login at once instead of
// after the browser came back.
func localServerTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--local-server-cert and --local-server-key must be set together")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--local-server-cert/--local-server-key: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// writeRedirectPage is the loopback page after a successful login with
// --open-url-after-authentication: like kubelogin's, it sends the browser
// on with a meta refresh and a link (the URL escaped here; kubelogin
// writes it as it is).
func writeRedirectPage(w http.ResponseWriter, target string) {
	u, err := url.Parse(target)
	if err != nil {
		fmt.Fprintf(w, `<!doctype html><title>Logged in</title><p id="result">Logged in. --open-url-after-authentication is not a URL: %s</p>`, html.EscapeString(err.Error()))
		return
	}
	t := html.EscapeString(u.String())
	fmt.Fprintf(w, `<!doctype html><meta http-equiv="refresh" content="0;URL=%s"><title>Logged in</title><p id="result">Logged in. <a href="%s">Continue</a></p>`, t, t)
}
