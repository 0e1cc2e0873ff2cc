// Package consentui holds the self-contained building blocks of trustgate's sign-in and consent
// pages: argon2id password hashing and the password policy, login attempt limiting, CSRF tokens
// bound to a per-browser cookie, and the server-rendered HTML pages (sign in, sign up, choose a
// server, trust level, errors) with their security headers.
//
// The pages are plain HTML forms that work without JavaScript and whose field names are a
// contract that people, scripts and tests drive: email, password, password_confirm, server,
// server_url, trust_level, decision (allow or deny), state_ref and csrf_token.
//
// The handlers that glue these pieces to fosite and the store live elsewhere. A typical POST
// handler: limit the body (http.MaxBytesReader), CSRF.Verify, Limiter.Allow on the client
// address key and then on the account key, look the account up, VerifyPassword (DummyVerify
// when there is no such account), Limiter.Success on the account key when the password was
// right, and Render the next page (or redirect).
package consentui
