package sso

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/trustgate/trustgate/internal/strictjson"
)

// GitHub signs people in with OAuth 2 only: who they are comes from its REST API, GET /user
// (the numeric id is the stable subject) and GET /user/emails, of which only the address
// marked both primary and verified is taken.

type githubUser struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
}

type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

func (c *Client) githubIdentity(ctx context.Context, s Settings, tok *oauth2.Token) (Identity, error) {
	_, _, api := s.github()
	if tok.AccessToken == "" {
		return Identity{}, fmt.Errorf("%w: no access token", ErrExchange)
	}
	var u githubUser
	if err := c.githubGet(ctx, api+"/user", tok.AccessToken, &u); err != nil {
		return Identity{}, err
	}
	if u.ID <= 0 {
		return Identity{}, fmt.Errorf("%w: GitHub's /user has no id", ErrProvider)
	}
	var emails []githubEmail
	if err := c.githubGet(ctx, api+"/user/emails", tok.AccessToken, &emails); err != nil {
		return Identity{}, err
	}
	for _, e := range emails {
		if e.Primary && e.Verified && looksLikeEmail(strings.TrimSpace(e.Email)) {
			return Identity{Method: MethodGitHub, Subject: strconv.FormatInt(u.ID, 10), Email: strings.TrimSpace(e.Email), Issuer: api}, nil
		}
	}
	return Identity{}, ErrUnverifiedEmail
}

func (c *Client) githubGet(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrProvider, err)
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrProvider, describe(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBytes+1))
	if err != nil {
		return fmt.Errorf("%w: read %s: %s", ErrProvider, url, describe(err))
	}
	if len(body) > maxAPIBytes {
		return fmt.Errorf("%w: the answer of %s is larger than %d bytes", ErrProvider, url, maxAPIBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: %s answered HTTP %d", ErrProvider, url, resp.StatusCode)
	}
	if err := strictjson.Check(body); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrProvider, url, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %s: %s", ErrProvider, url, describe(err))
	}
	return nil
}
