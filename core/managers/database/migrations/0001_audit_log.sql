-- The audit log: one row per action execution and per security event (login, logout,
-- token reuse, API key use). Written by the actions and auth features; read by admins.
CREATE TABLE audit_log (
    id             bigserial PRIMARY KEY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    kind           text NOT NULL,              -- 'action', 'auth', ...
    action         text NOT NULL,              -- action name or auth event name
    principal_type text,                       -- 'user', 'api_key', NULL when anonymous
    principal_id   text,
    outcome        text NOT NULL,              -- 'ok', 'error', 'denied', ...
    status         integer,                    -- HTTP status answered
    duration_ms    double precision,
    request_id     text,
    params_digest  text,                       -- a digest of the parameters, never the values
    details        jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX audit_log_occurred_at_idx ON audit_log (occurred_at);
CREATE INDEX audit_log_principal_idx ON audit_log (principal_type, principal_id);
