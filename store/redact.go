package store

import (
	"net/url"
	"strings"
)

// Database URLs carry passwords, in the userinfo or in a password= query parameter. Nothing the
// store logs or returns may contain them: URLs are shown through redactURL, and errors of the
// drivers go through a redactor built from the URL's secrets.

const redactedMark = "xxxxx"

// redactURL returns the URL with its password (userinfo or query) replaced by a mark. A URL that
// does not parse is not shown at all.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		}
	}
	q := u.Query()
	changed := false
	for k := range q {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			q.Set(k, redactedMark)
			changed = true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactor scrubs a URL's secrets from text such as driver error messages.
type redactor struct{ secrets []string }

func newRedactor(raw string) redactor {
	var r redactor
	add := func(s string) {
		if s == "" {
			return
		}
		r.secrets = append(r.secrets, s)
		if e := url.QueryEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
		if e := url.PathEscape(s); e != s {
			r.secrets = append(r.secrets, e)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Without a parse we cannot find the password; hide the userinfo wholesale.
		if at := strings.LastIndex(raw, "@"); at >= 0 {
			if i := strings.Index(raw, "://"); i >= 0 && i+3 < at {
				userinfo := raw[i+3 : at]
				if _, pw, ok := strings.Cut(userinfo, ":"); ok {
					add(pw)
				}
			}
		}
		return r
	}
	if u.User != nil {
		if pw, ok := u.User.Password(); ok {
			add(pw)
		}
	}
	for k, vs := range u.Query() {
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return r
}

func (r redactor) text(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, redactedMark)
	}
	return s
}

// err returns err with the secrets scrubbed from its message; errors.Is and errors.As still see
// the original chain.
func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := r.text(msg)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
