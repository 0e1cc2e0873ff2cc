-- trustgate's control plane, version 22: per-host sign-in methods.
--
-- auth_methods: one row per host and sign-in method ("password", "email_otp", "passkey",
-- "oidc", "google", "github", "microsoft", "saml"). A host without rows signs people in with
-- email and password only. allowed_domains and force_redirect_domains are JSON arrays of
-- lower-case domains ('[]' for none); config is the method's non-secret settings as JSON text;
-- sealed_secret is the provider secret sealed with the master key, as base64 text ('' for none).
-- The host's global list of allowed sign-in domains is in hosts.settings (sign_in_domains).
CREATE TABLE auth_methods (
    host_key               TEXT    NOT NULL,
    method                 TEXT    NOT NULL,
    enabled                BOOLEAN NOT NULL DEFAULT FALSE,
    allowed_domains        TEXT    NOT NULL DEFAULT '[]',
    force_redirect_domains TEXT    NOT NULL DEFAULT '[]',
    config                 TEXT    NOT NULL DEFAULT '{}',
    sealed_secret          TEXT    NOT NULL DEFAULT '',
    updated_at             BIGINT  NOT NULL,
    PRIMARY KEY (host_key, method)
);
