// Package dashboard is trustgate's web dashboard, served at the origin (/ and /dashboard/…):
// the first operator's one-time setup, sign-in (on the host's own sign-in page, with its
// methods), and the pages with
// which operators (admins of the default host, who administer every host) and host admins
// (who administer their own host) manage hosts and their settings, approval rules and sign-in
// methods, MCP servers (Create server: Connect, a sign-in at a server that requires its own,
// the review table, Import), humans, agents, the calls held for approval (Pending approvals:
// approve, deny, revoke standing approvals), the audit log with its live tail, the trust map
// and Why? (from any denied entry of the audit log); and each human's My connections.
//
// Pages are server-rendered (html/template, embedded) with one stylesheet; every action is a
// plain form that works without JavaScript. Every change goes through the admin API's own
// routes, in process, as the signed-in person (admin.PrincipalHandler), so the dashboard has no
// business rule of its own and nothing it does is missing from the API or the CLI.
//
// Security: sessions are server-side (the store keeps the hash of the cookie's secret) and end
// at sign-out; cookies are HttpOnly, SameSite=Lax and Secure under https; every form carries a
// CSRF token (consentui's); every page checks the viewer's role on the server, and a host admin
// never reaches another host; the Content-Security-Policy allows no inline script or style and
// no framing.
package dashboard
