-- Browser sessions of the web console. The cookie carries a random token;
-- only its SHA-256 is stored. `csrf` is the session's form token.
CREATE TABLE web_sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  TEXT    NOT NULL UNIQUE,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    csrf        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    ended_at    INTEGER
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
