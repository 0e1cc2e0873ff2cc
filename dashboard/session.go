package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/forwarded"
	"github.com/trustgate/trustgate/oauthserver"
	"github.com/trustgate/trustgate/oauthserver/consentui"
	"github.com/trustgate/trustgate/sdk"
	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/tenant"
)

// role is what a signed-in human may do in the dashboard.
type role int

const (
	roleHuman     role = iota // no admin pages
	roleHostAdmin             // administers their host
	roleOperator              // an admin of the default host: administers every host
)

// viewer is the signed-in human of a request, as the store says now: the role is read at every
// request, so removing the admin flag or deleting the human takes effect at once.
type viewer struct {
	Host, UserID, Email, Name string
	Role                      role
	sessionHash               string
}

// IsOperator and IsAdmin are for templates.
func (v *viewer) IsOperator() bool { return v.Role == roleOperator }
func (v *viewer) IsAdmin() bool    { return v.Role >= roleHostAdmin }

// refuse is why v may not use a route of access a on host ("" when the path names none), or ""
// when v may.
func (v *viewer) refuse(a access, host string) string {
	switch {
	case a == signedIn:
		return ""
	case v.Role == roleHuman:
		return "This page is for admins. Ask an admin of your host for the admin role."
	case a == operator && v.Role != roleOperator:
		return "Only operators (admins of the default host) may do this."
	case host != "" && v.Role != roleOperator && host != v.Host:
		return "You administer host " + v.Host + " only."
	}
	return ""
}

// viewer reads the request's session: nil when there is none, it ended or expired, or its
// human no longer exists.
func (d *Dashboard) viewer(r *http.Request) (*viewer, error) {
	c, err := r.Cookie(d.cookie)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return nil, nil
	}
	ctx := r.Context()
	hash := hashSecret(c.Value)
	s, err := d.cfg.Store.GetDashboardSession(ctx, hash, d.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := d.cfg.Store.GetUser(ctx, s.Host, s.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v := &viewer{Host: u.Host, UserID: u.ID, Email: u.Email, Name: u.Name, sessionHash: hash}
	switch {
	case u.Admin && u.Host == tenant.DefaultHost:
		v.Role = roleOperator
	case u.Admin:
		v.Role = roleHostAdmin
	}
	return v, nil
}

// front is /: what trustgate is and "Sign in" for a visitor, the hosts for an admin.
func (d *Dashboard) front(w http.ResponseWriter, r *http.Request, v *viewer) {
	if v != nil && v.IsAdmin() {
		http.Redirect(w, r, Prefix+"/hosts", http.StatusSeeOther)
		return
	}
	if v != nil {
		http.Redirect(w, r, Prefix+"/me", http.StatusSeeOther)
		return
	}
	d.render(w, r, v, http.StatusOK, "front", "trustgate", "", nil)
}

type signInData struct {
	Host, Next, Error string
}

func (d *Dashboard) signInPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	data := signInData{Next: safeNext(r.URL.Query().Get("next")), Host: r.URL.Query().Get("host")}
	d.render(w, r, v, http.StatusOK, "signin", "Sign in", "", data)
}

// safeNext keeps a redirect after sign-in within the dashboard.
func safeNext(next string) string {
	if next == "/" || strings.HasPrefix(next, Prefix+"/") && !strings.HasPrefix(next, "//") && !strings.ContainsAny(next, "\\\r\n") && len(next) < 512 {
		return next
	}
	return ""
}

// signInCookie is the cookie that binds a sign-in in progress to the browser that began it.
func (d *Dashboard) signInCookie() string {
	if d.secure {
		return "__Host-tg_dash_signin"
	}
	return "tg_dash_signin"
}

// signIn sends the browser to the host's own sign-in page (the OAuth server's), which offers
// the host's sign-in methods under its domain rules; it comes back to signInDone with a
// ticket. Operators sign in on the default host (the host field empty); a host's admins and
// humans name their host.
func (d *Dashboard) signIn(w http.ResponseWriter, r *http.Request, _ *viewer) {
	data := signInData{Host: strings.TrimSpace(r.PostFormValue("host")), Next: safeNext(r.PostFormValue("next"))}
	host := strings.ToLower(data.Host)
	if host == "" {
		host = tenant.DefaultHost
	}
	fail := func(status int, msg string) {
		data.Error = msg
		d.render(w, r, nil, status, "signin", "Sign in", "", data)
	}
	if !tenant.ValidKey(host) {
		fail(http.StatusBadRequest, "There is no host named "+data.Host+". Leave the host empty if you are an operator.")
		return
	}
	back := d.cfg.URLs.Public.String() + Prefix + "/sign-in/done"
	if data.Next != "" {
		back += "?" + url.Values{"next": {data.Next}}.Encode()
	}
	signInURL, binder, err := d.cfg.SignIn.BeginSignIn(r.Context(), host, back, forwarded.New(d.cfg.TrustedProxies).ClientAddr(r))
	if errors.Is(err, store.ErrNotFound) {
		fail(http.StatusNotFound, "There is no host named "+data.Host+". Leave the host empty if you are an operator.")
		return
	}
	if tooMany := (oauthserver.TooManySignInsError{}); errors.As(err, &tooMany) {
		w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64((tooMany.RetryAfter+time.Second-1)/time.Second)), 10))
		fail(http.StatusTooManyRequests, "Too many sign-ins were begun from your network. "+consentui.TooManyAttemptsMessage(tooMany.RetryAfter))
		return
	}
	if err != nil {
		d.internalError(w, r, "begin a sign-in", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: d.signInCookie(), Value: binder, Path: "/", MaxAge: int(signInTTL.Seconds()),
		HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, signInURL, http.StatusSeeOther)
}

// signInTTL bounds a sign-in in progress (the host's pending request lasts as long).
const signInTTL = 10 * time.Minute

// signInDone is where the host's sign-in sends the browser back: the ticket, with the binder
// this browser holds, names who signed in; their dashboard session starts.
func (d *Dashboard) signInDone(w http.ResponseWriter, r *http.Request, _ *viewer) {
	binder := ""
	if c, err := r.Cookie(d.signInCookie()); err == nil {
		binder = c.Value
	}
	http.SetCookie(w, &http.Cookie{Name: d.signInCookie(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
	ctx := r.Context()
	who, err := d.cfg.SignIn.FinishSignIn(ctx, r.URL.Query().Get("ticket"), binder)
	if errors.Is(err, oauthserver.ErrSignInTicket) {
		d.render(w, r, nil, http.StatusBadRequest, "signin", "Sign in", "", signInData{
			Next:  safeNext(r.URL.Query().Get("next")),
			Error: "This sign-in did not finish in this browser, or it took too long. Sign in again."})
		return
	}
	if err != nil {
		d.internalError(w, r, "finish a sign-in", err)
		return
	}
	u, err := d.cfg.Store.GetUser(ctx, who.Host, who.UserID)
	if err == nil {
		err = d.startSession(ctx, w, u)
	}
	if err != nil {
		d.internalError(w, r, "start a dashboard session", err)
		return
	}
	next := safeNext(r.URL.Query().Get("next"))
	if next == "" {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// startSession stores a new session of u and sets its cookie.
func (d *Dashboard) startSession(ctx context.Context, w http.ResponseWriter, u store.User) error {
	secret := randomSecret()
	err := d.cfg.Store.CreateDashboardSession(ctx, store.DashboardSession{
		IDHash: hashSecret(secret), Host: u.Host, UserID: u.ID, ExpiresAt: d.now().Add(SessionTTL),
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: d.cookie, Value: secret, Path: "/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

func (d *Dashboard) signOut(w http.ResponseWriter, r *http.Request, v *viewer) {
	if err := d.cfg.Store.DeleteDashboardSession(r.Context(), v.sessionHash); err != nil {
		d.internalError(w, r, "end a dashboard session", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: d.cookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: d.secure, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ---- first run

// OperatorExists reports whether the gateway has an operator: an admin of the default host.
func OperatorExists(ctx context.Context, s Store) (bool, error) {
	users, err := s.ListUsers(ctx, tenant.DefaultHost)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.Admin {
			return true, nil
		}
	}
	return false, nil
}

// IssueSetupLink makes a new one-time setup link for the first operator (an earlier one stops
// working) and returns it; it refuses when an operator exists.
func IssueSetupLink(ctx context.Context, s Store, urls tenant.URLs) (string, error) {
	exists, err := OperatorExists(ctx, s)
	if err != nil {
		return "", err
	}
	if exists {
		return "", errors.New("the gateway already has an operator: sign in on the dashboard, or make another admin of the default host with `trustgate admin human update --admin`")
	}
	secret := randomSecret()
	if err := s.PutDashboardSetup(ctx, hashSecret(secret)); err != nil {
		return "", err
	}
	return urls.Public.String() + Prefix + "/setup?token=" + secret, nil
}

// FirstRunSetupLink is what serve logs at start: a new setup link when there is no operator and
// none was issued yet ("" otherwise, so that a link is logged once).
func FirstRunSetupLink(ctx context.Context, s Store, urls tenant.URLs) (string, error) {
	exists, err := OperatorExists(ctx, s)
	if err != nil || exists {
		return "", err
	}
	issued, err := s.DashboardSetupIssued(ctx)
	if err != nil || issued {
		return "", err
	}
	return IssueSetupLink(ctx, s, urls)
}

type setupData struct {
	Token, Email, Error string
}

func (d *Dashboard) setupPage(w http.ResponseWriter, r *http.Request, v *viewer) {
	token := r.URL.Query().Get("token")
	if exists, err := OperatorExists(r.Context(), d.cfg.Store); err != nil || exists || token == "" || len(token) > 128 {
		if err != nil {
			d.internalError(w, r, "look for an operator", err)
			return
		}
		d.errorPage(w, r, v, http.StatusNotFound, "This setup link is not valid: it was used already, or a newer one replaced it. Operators sign in on the sign-in page.")
		return
	}
	d.render(w, r, v, http.StatusOK, "setup", "Set up trustgate", "", setupData{Token: token})
}

// setup makes the first operator: the setup link is used (once, even under concurrent
// submissions), the human is created through the admin API as an admin of the default host,
// and their password stored as the OAuth pages store passwords.
func (d *Dashboard) setup(w http.ResponseWriter, r *http.Request, _ *viewer) {
	ctx := r.Context()
	token := r.PostFormValue("token")
	email := strings.TrimSpace(r.PostFormValue("email"))
	password := r.PostFormValue("password")
	data := setupData{Token: token, Email: email}
	fail := func(status int, msg string) {
		data.Error = msg
		d.render(w, r, nil, status, "setup", "Set up trustgate", "", data)
	}
	if password != r.PostFormValue("confirm") {
		fail(http.StatusBadRequest, "The two passwords differ.")
		return
	}
	if err := consentui.CheckPasswordPolicy(password); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if email == "" || len(email) > 320 || !strings.Contains(email, "@") {
		fail(http.StatusBadRequest, "Enter your email address.")
		return
	}
	phc, err := consentui.HashPassword(password)
	if err != nil {
		d.internalError(w, r, "hash a password", err)
		return
	}
	if exists, err := OperatorExists(ctx, d.cfg.Store); err != nil || exists {
		if err != nil {
			d.internalError(w, r, "look for an operator", err)
			return
		}
		d.errorPage(w, r, nil, http.StatusNotFound, "This setup link is not valid any more: the gateway has an operator.")
		return
	}
	hash := hashSecret(token)
	if err := d.cfg.Store.UseDashboardSetup(ctx, hash); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			d.errorPage(w, r, nil, http.StatusNotFound, "This setup link is not valid: it was used already, or a newer one replaced it.")
			return
		}
		d.internalError(w, r, "use the setup link", err)
		return
	}
	setupCtx := withSetupPrincipal(r, email)
	h, err := d.api.CreateHuman(setupCtx, tenant.DefaultHost, sdk.HumanCreate{Email: email, Admin: true})
	if err == nil {
		err = d.cfg.Store.SetUserPassword(ctx, tenant.DefaultHost, h.ID, phc)
	}
	if err != nil {
		// The link stays usable: nothing was set up.
		if perr := d.cfg.Store.PutDashboardSetup(ctx, hash); perr != nil {
			d.log.Error("dashboard: restore the setup link", "err", perr)
		}
		status, msg := apiMessage(err)
		fail(status, msg)
		return
	}
	u, err := d.cfg.Store.GetUser(ctx, tenant.DefaultHost, h.ID)
	if err == nil {
		err = d.startSession(ctx, w, u)
	}
	if err != nil {
		d.internalError(w, r, "start the first operator's session", err)
		return
	}
	d.log.Info("dashboard: the first operator was set up", "email", email)
	http.Redirect(w, r, Prefix+"/hosts?done=setup", http.StatusSeeOther)
}

// withSetupPrincipal is the admin API caller that creates the first operator.
func withSetupPrincipal(r *http.Request, email string) context.Context {
	return as(r, &viewer{Role: roleOperator, Email: email + " (setup link)"})
}
