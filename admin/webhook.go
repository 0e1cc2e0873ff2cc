package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/trustgate/trustgate/store"
	"github.com/trustgate/trustgate/webhook"
)

// A host's Slack-compatible incoming webhook (package webhook): the URL is write-only, sealed
// with the master key in the host's settings; the API shows only whether it is set.

func webhookStatus(w *store.HostWebhook) WebhookStatus {
	if w == nil {
		return WebhookStatus{}
	}
	at := w.UpdatedAt
	return WebhookStatus{Set: true, UpdatedAt: &at}
}

func (a *API) getWebhook(r *http.Request, _ *caller) (int, any, error) {
	h, err := a.cfg.Store.GetHost(r.Context(), r.PathValue("host"))
	if err != nil {
		return 0, nil, hostNotFound(err, r.PathValue("host"))
	}
	return http.StatusOK, webhookStatus(h.Settings.Webhook), nil
}

func (a *API) setWebhook(r *http.Request, c *caller) (int, any, error) {
	var req WebhookSet
	if err := decodeBody(nil, r, &req); err != nil {
		return 0, nil, err
	}
	if err := webhook.ValidateURL(req.URL); err != nil {
		return 0, nil, problemf(http.StatusBadRequest, "url: %v", err)
	}
	host := r.PathValue("host")
	h, err := a.cfg.Store.GetHost(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	c.change.old = webhookSummary(h.Settings.Webhook)
	h.Settings.Webhook = &store.HostWebhook{SealedURL: webhook.SealURL(a.cfg.Keys, host, req.URL), UpdatedAt: time.Now()}
	if h, err = a.cfg.Store.UpdateHost(r.Context(), h); err != nil {
		return 0, nil, err
	}
	c.change.new = "set" // never the URL: whoever holds it may post to the channel
	return http.StatusOK, webhookStatus(h.Settings.Webhook), nil
}

func (a *API) deleteWebhook(r *http.Request, c *caller) (int, any, error) {
	host := r.PathValue("host")
	h, err := a.cfg.Store.GetHost(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	if h.Settings.Webhook == nil {
		c.change.none = true
		return http.StatusNoContent, nil, nil
	}
	c.change.old, c.change.new = "set", "not set"
	h.Settings.Webhook = nil
	if _, err := a.cfg.Store.UpdateHost(r.Context(), h); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// testWebhook posts one message now and says what happened: the answer an administrator needs
// after setting the URL. A failure is a 200 with delivered false and the reason, never the URL.
func (a *API) testWebhook(r *http.Request, c *caller) (int, any, error) {
	host := r.PathValue("host")
	h, err := a.cfg.Store.GetHost(r.Context(), host)
	if err != nil {
		return 0, nil, hostNotFound(err, host)
	}
	if h.Settings.Webhook == nil {
		return 0, nil, problemf(http.StatusConflict, "host %s has no webhook: set one first", host)
	}
	rawURL, err := webhook.OpenURL(a.cfg.Keys, host, h.Settings.Webhook.SealedURL)
	if err != nil {
		return 0, nil, fmt.Errorf("host %s's webhook: %w", host, err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhook.DefaultTimeout+time.Second)
	defer cancel()
	msg := webhook.Message{Text: fmt.Sprintf("trustgate: a test message for host %s, sent by %s", host, c.actor())}
	if err := webhook.Test(ctx, a.cfg.HostNetworks, rawURL, msg); err != nil {
		if errors.Is(err, context.Canceled) {
			return 0, nil, err
		}
		return http.StatusOK, WebhookTestResult{Error: err.Error()}, nil
	}
	return http.StatusOK, WebhookTestResult{Delivered: true}, nil
}

func webhookSummary(w *store.HostWebhook) string {
	if w == nil {
		return "not set"
	}
	return "set"
}
