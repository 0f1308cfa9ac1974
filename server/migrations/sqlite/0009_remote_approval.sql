-- Customer approval of remote login: a contract may require it, and a
-- customer user then approves access per case, for a time, with a reason.

ALTER TABLE contracts ADD COLUMN remote_access_approval INTEGER NOT NULL DEFAULT 0;

CREATE TABLE remote_approvals (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    -- the engineer it covers; NULL: whoever holds the case (assignee, experts)
    user_id     INTEGER REFERENCES users (id),
    approved_by INTEGER NOT NULL REFERENCES users (id),
    reason      TEXT    NOT NULL,
    approved_at INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER,
    revoked_by  INTEGER REFERENCES users (id)
);
CREATE INDEX remote_approvals_case ON remote_approvals (case_id);
