-- The knowledge base (issue 9, item 3) and service-report schedules (item 4).
--
-- An article is drafted from a resolved case and goes draft -> in_review ->
-- published. Every edit is a new row in kb_versions (never updated or
-- deleted: the triggers refuse it); the article row points at its latest
-- version and at the version readers and search see (published_version),
-- so a published article stays searchable while its next edit is reviewed.

CREATE TABLE kb_articles (
    id                INTEGER PRIMARY KEY,
    source_case_id    INTEGER REFERENCES cases (id),
    state             TEXT    NOT NULL CHECK (state IN ('draft', 'in_review', 'published')),
    version           INTEGER NOT NULL CHECK (version >= 1),
    published_version INTEGER CHECK (published_version <= version),
    created_by        INTEGER NOT NULL REFERENCES users (id),
    submitted_by      INTEGER REFERENCES users (id),
    reviewed_by       INTEGER REFERENCES users (id),
    review_comment    TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    published_at      INTEGER
);
CREATE INDEX kb_articles_state ON kb_articles (state, updated_at);
CREATE INDEX kb_articles_case ON kb_articles (source_case_id);

CREATE TABLE kb_versions (
    article_id  INTEGER NOT NULL REFERENCES kb_articles (id),
    version     INTEGER NOT NULL,
    title       TEXT    NOT NULL,
    symptom     TEXT    NOT NULL,
    cause       TEXT    NOT NULL,
    resolution  TEXT    NOT NULL,
    vendor      TEXT,
    device_type TEXT,
    model       TEXT,
    firmware    TEXT,
    edited_by   INTEGER NOT NULL REFERENCES users (id),
    edited_at   INTEGER NOT NULL,
    PRIMARY KEY (article_id, version)
);
CREATE TRIGGER kb_versions_no_update BEFORE UPDATE ON kb_versions
BEGIN SELECT RAISE(ABORT, 'kb_versions is append-only'); END;
CREATE TRIGGER kb_versions_no_delete BEFORE DELETE ON kb_versions
BEGIN SELECT RAISE(ABORT, 'kb_versions is append-only'); END;

-- The search index: published articles (their published version) and
-- closed cases, one document each. FTS5 with the Porter stemmer; the
-- rowid says what a document is: 2 * case id for a case, 2 * article id + 1
-- for an article, so a document is replaced by its key, never by a scan.
-- store::kb writes the articles' documents; the triggers below keep the
-- cases' (whichever path closes or reopens a case).
CREATE VIRTUAL TABLE kb_docs USING fts5 (
    kind UNINDEXED,
    ref_id UNINDEXED,
    vendor UNINDEXED,
    device_type UNINDEXED,
    model UNINDEXED,
    title,
    body,
    tokenize = 'porter unicode61 remove_diacritics 2'
);

CREATE TRIGGER kb_docs_case_closed AFTER UPDATE OF status ON cases
WHEN NEW.status = 'closed' AND OLD.status <> 'closed'
BEGIN
    DELETE FROM kb_docs WHERE rowid = 2 * NEW.id;
    INSERT INTO kb_docs (rowid, kind, ref_id, vendor, device_type, model, title, body)
    SELECT 2 * NEW.id, 'case', NEW.id, COALESCE(NEW.vendor, d.vendor), d.device_type, d.model,
           NEW.summary,
           NEW.details || ' ' || COALESCE((
               SELECT group_concat(
                   COALESCE(json_extract(a.body, '$.summary'), '') || ' ' ||
                   COALESCE(json_extract(a.body, '$.cause'), '') || ' ' ||
                   COALESCE(json_extract(a.body, '$.actions'), ''), ' ')
               FROM activities a
               WHERE a.case_id = NEW.id AND a.kind IN ('fault_report', 'diagnosed')), '')
    FROM (SELECT 1) AS one LEFT JOIN devices d ON d.id = NEW.device_id;
END;

CREATE TRIGGER kb_docs_case_reopened AFTER UPDATE OF status ON cases
WHEN OLD.status = 'closed' AND NEW.status <> 'closed'
BEGIN
    DELETE FROM kb_docs WHERE rowid = 2 * NEW.id;
END;

-- Cases closed before this migration.
INSERT INTO kb_docs (rowid, kind, ref_id, vendor, device_type, model, title, body)
SELECT 2 * c.id, 'case', c.id, COALESCE(c.vendor, d.vendor), d.device_type, d.model, c.summary,
       c.details || ' ' || COALESCE((
           SELECT group_concat(
               COALESCE(json_extract(a.body, '$.summary'), '') || ' ' ||
               COALESCE(json_extract(a.body, '$.cause'), '') || ' ' ||
               COALESCE(json_extract(a.body, '$.actions'), ''), ' ')
           FROM activities a
           WHERE a.case_id = c.id AND a.kind IN ('fault_report', 'diagnosed')), '')
FROM cases c LEFT JOIN devices d ON d.id = c.device_id
WHERE c.status = 'closed';

-- Service reports e-mailed on a schedule: one schedule per organisation.
-- Each run is a durable timer (`report:<organization id>`, kind
-- `service_report:<period start>`); report_runs records what was sent, so
-- a repeated firing sends nothing twice.
CREATE TABLE report_schedules (
    organization_id INTEGER PRIMARY KEY REFERENCES organizations (id),
    frequency       TEXT    NOT NULL CHECK (frequency IN ('weekly', 'monthly')),
    -- JSON array of e-mail addresses
    recipients      TEXT    NOT NULL,
    next_run_at     INTEGER NOT NULL,
    updated_by      INTEGER REFERENCES users (id),
    updated_at      INTEGER NOT NULL
);

CREATE TABLE report_runs (
    id              INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL REFERENCES organizations (id),
    period_from     TEXT    NOT NULL, -- ISO date, included
    period_to       TEXT    NOT NULL, -- ISO date, included
    recipients      TEXT    NOT NULL, -- JSON array
    pdf_bytes       INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL,
    UNIQUE (organization_id, period_from, period_to)
);
