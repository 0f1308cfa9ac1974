-- Inbound e-mail (mail gateway and IMAP poller). Keep in step with
-- ../postgres/0016_mail.sql.
--
-- Every message that reaches the server is kept here, raw, whatever became
-- of it: a new case, a note on a case, or held for a person (unknown sender,
-- malformed, over a limit) or ignored (auto-replies, bounces, loops). The
-- Message-ID is unique, so the same message delivered twice (an MTA retry,
-- two pollers) is taken in once. Messages without a Message-ID get
-- 'sha256:<hex of the raw bytes>' instead.
CREATE TABLE mail_messages (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT    NOT NULL UNIQUE,
    -- where it came from: 'mailgate', 'imap:<mailbox name>'
    source      TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    -- the From: address and Subject:, when they could be read
    sender      TEXT,
    subject     TEXT,
    size        INTEGER NOT NULL,
    -- processing: being taken in (a crash leaves it so, and it is listed
    --   for a person with the held ones);
    -- opened: became a case; replied: became a note on a case;
    -- ignored: an auto-reply, bounce or loop, never answered;
    -- held: waiting for a person (unknown sender, sender not on the case);
    -- refused: over a limit, or refused by the unknown-sender policy;
    -- malformed: not a message we could read.
    outcome     TEXT    NOT NULL CHECK (outcome IN
                ('processing', 'opened', 'replied', 'ignored', 'held', 'refused', 'malformed')),
    reason      TEXT,
    case_id     INTEGER REFERENCES cases (id),
    updated_at  INTEGER NOT NULL,
    raw         BLOB    NOT NULL
);
CREATE INDEX mail_messages_outcome ON mail_messages (outcome, id);
CREATE INDEX mail_messages_case ON mail_messages (case_id, id);

-- Attachments of messages taken into a case: stored after their size and
-- sniffed content type passed the checks (mail::attachments).
CREATE TABLE mail_attachments (
    id            INTEGER PRIMARY KEY,
    case_id       INTEGER NOT NULL REFERENCES cases (id),
    mail_id       INTEGER NOT NULL REFERENCES mail_messages (id),
    filename      TEXT    NOT NULL,
    -- the type found in the content (magic bytes), and the one the sender declared
    content_type  TEXT    NOT NULL,
    declared_type TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT    NOT NULL,
    visibility    TEXT    NOT NULL CHECK (visibility IN ('public', 'internal')),
    created_at    INTEGER NOT NULL,
    data          BLOB    NOT NULL
);
CREATE INDEX mail_attachments_case ON mail_attachments (case_id, id);
