-- Jobs, the results cache and per-guild settings (PostgreSQL dialect of the SQLite V1).
-- Times are epoch seconds (UTC) as double precision, like the records. JSON columns use the
-- json type: it checks the text is JSON and keeps it verbatim (key order included), as the
-- SQLite backend does. Discord ids are bigint; job ids are text.

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL DEFAULT 'separation',
    source_kind         TEXT NOT NULL CHECK (source_kind IN ('ids', 'url', 'attachment')),
    source_key          TEXT NOT NULL,
    model               TEXT NOT NULL,
    requester_id        BIGINT NOT NULL,
    channel_id          BIGINT NOT NULL,
    guild_id            BIGINT,
    source_task_id      TEXT,
    source_audio_id     TEXT,
    source_url          TEXT,
    options             JSON NOT NULL DEFAULT '{}',
    status_message_id   BIGINT,
    reply_to_message_id BIGINT,
    vidgo_task_id       TEXT UNIQUE,
    leader_id           TEXT REFERENCES jobs (id),
    state               TEXT NOT NULL,
    outcome             TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    polls               INTEGER NOT NULL DEFAULT 0,
    delivery_attempts   INTEGER NOT NULL DEFAULT 0,
    due_at              DOUBLE PRECISION,
    leased              BOOLEAN NOT NULL DEFAULT FALSE,
    deadline_at         DOUBLE PRECISION NOT NULL,
    last_error          TEXT,
    error_kind          TEXT,
    callback_token_hash TEXT UNIQUE,
    callbacks           INTEGER NOT NULL DEFAULT 0,
    result              JSON,
    track               JSON,
    result_message_id   BIGINT,
    created_at          DOUBLE PRECISION NOT NULL,
    updated_at          DOUBLE PRECISION NOT NULL,
    finished_at         DOUBLE PRECISION
);

-- The scheduler asks only for the earliest due job and a batch of due jobs.
CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
-- Leases left by a process that died are released at start-up.
CREATE INDEX jobs_leased ON jobs (leased) WHERE leased;
-- Coalescing looks up the in-flight leader of a source.
CREATE INDEX jobs_active_source ON jobs (source_key)
    WHERE leader_id IS NULL AND state IN ('accepted', 'submitted', 'running');
-- Followers of a leader; also what the foreign key checks when a leader is deleted.
CREATE INDEX jobs_followers ON jobs (leader_id) WHERE leader_id IS NOT NULL;
CREATE INDEX jobs_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_requester ON jobs (guild_id, requester_id, created_at);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE results_cache (
    source_key    TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    vidgo_task_id TEXT,
    result        JSON NOT NULL,
    track         JSON,
    created_at    DOUBLE PRECISION NOT NULL
);

CREATE TABLE guild_settings (
    guild_id   BIGINT PRIMARY KEY,
    settings   JSON NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL
);
