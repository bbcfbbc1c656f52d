-- Jobs, the results cache and per-guild settings.
-- Times are epoch seconds (UTC). JSON columns hold objects written by the engine.

CREATE TABLE jobs (
    id                  TEXT PRIMARY KEY,
    kind                TEXT NOT NULL DEFAULT 'separation',
    source_kind         TEXT NOT NULL CHECK (source_kind IN ('ids', 'url', 'attachment')),
    source_key          TEXT NOT NULL,
    model               TEXT NOT NULL,
    requester_id        INTEGER NOT NULL,
    channel_id          INTEGER NOT NULL,
    guild_id            INTEGER,
    source_task_id      TEXT,
    source_audio_id     TEXT,
    source_url          TEXT,
    options             TEXT NOT NULL DEFAULT '{}',
    status_message_id   INTEGER,
    reply_to_message_id INTEGER,
    vidgo_task_id       TEXT UNIQUE,
    leader_id           TEXT REFERENCES jobs (id),
    state               TEXT NOT NULL,
    outcome             TEXT,
    attempts            INTEGER NOT NULL DEFAULT 0,
    polls               INTEGER NOT NULL DEFAULT 0,
    delivery_attempts   INTEGER NOT NULL DEFAULT 0,
    due_at              REAL,
    leased              INTEGER NOT NULL DEFAULT 0,
    deadline_at         REAL NOT NULL,
    last_error          TEXT,
    error_kind          TEXT,
    callback_token_hash TEXT UNIQUE,
    callbacks           INTEGER NOT NULL DEFAULT 0,
    result              TEXT,
    track               TEXT,
    result_message_id   INTEGER,
    created_at          REAL NOT NULL,
    updated_at          REAL NOT NULL,
    finished_at         REAL
);

-- The scheduler asks only for the earliest due job and a batch of due jobs.
CREATE INDEX jobs_due ON jobs (due_at) WHERE due_at IS NOT NULL;
-- Leases left by a process that died are released at start-up.
CREATE INDEX jobs_leased ON jobs (leased) WHERE leased = 1;
-- Coalescing looks up the in-flight leader of a source.
CREATE INDEX jobs_active_source ON jobs (source_key)
    WHERE leader_id IS NULL AND state IN ('accepted', 'submitted', 'running');
CREATE INDEX jobs_followers ON jobs (leader_id) WHERE leader_id IS NOT NULL;
CREATE INDEX jobs_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_requester ON jobs (guild_id, requester_id, created_at);
CREATE INDEX jobs_state ON jobs (state);

CREATE TABLE results_cache (
    source_key    TEXT PRIMARY KEY,
    model         TEXT NOT NULL,
    vidgo_task_id TEXT,
    result        TEXT NOT NULL,
    track         TEXT,
    created_at    REAL NOT NULL
);

CREATE TABLE guild_settings (
    guild_id   INTEGER PRIMARY KEY,
    settings   TEXT NOT NULL DEFAULT '{}',
    updated_at REAL NOT NULL
);
