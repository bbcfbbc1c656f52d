-- Fenced leases, one callback token per job for its whole life, and the evidence the engine
-- needs so that no fault window can pay Vidgo twice or post a result twice (PostgreSQL
-- dialect of the SQLite V6). Every column is added with a constant default or none, which
-- PostgreSQL records without rewriting the table.

-- Every claim of a job bumps lease_id (the fencing token) and names the claiming process in
-- lease_owner; a worker's writes only land while the job still carries its lease_id.
ALTER TABLE jobs ADD COLUMN lease_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
-- A submit was sent whose answer never arrived (timeout, 5xx, reset, unreadable reply, or a
-- process that died mid-call): Vidgo may have created the task. Cleared by a definite answer.
ALTER TABLE jobs ADD COLUMN unconfirmed_submit_at DOUBLE PRECISION;
-- A callback to the job's own token named this task while the job did not know its task id;
-- the worker checks it with its own detail read before adopting it.
ALTER TABLE jobs ADD COLUMN task_hint TEXT;
-- Unexpected errors while working on the job; past a bound the job ends with a message.
ALTER TABLE jobs ADD COLUMN faults INTEGER NOT NULL DEFAULT 0;
-- When the last delivery attempt began (recorded before posting).
ALTER TABLE jobs ADD COLUMN delivery_started_at DOUBLE PRECISION;
-- When Vidgo's detail endpoint was last read for the job (callbacks are throttled on it).
ALTER TABLE jobs ADD COLUMN polled_at DOUBLE PRECISION;

-- The job's callback token is rebuilt from this key and the server's secret (an HMAC), so a
-- resubmit reuses it; it moves to the heir when a leader is cancelled. Older rows keep only
-- callback_token_hash (a random token's SHA-256), which is still looked up.
ALTER TABLE jobs ADD COLUMN callback_key TEXT;
CREATE UNIQUE INDEX jobs_callback_key ON jobs (callback_key) WHERE callback_key IS NOT NULL;

-- The leases a process holds: released when it stops or is found gone.
CREATE INDEX jobs_lease_owner ON jobs (lease_owner) WHERE leased;
-- A result already posted in a server is pointed to, privately, instead of posted again.
CREATE INDEX jobs_source_posted ON jobs (source_key, guild_id)
    WHERE state = 'delivered' AND outcome = 'succeeded';

-- The processes working on this database, so that only the leases of processes that are
-- gone are released.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT NOT NULL,
    started_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);

-- Server secrets generated on first use (the callback-token key, ...), shared by every
-- process that uses this database.
CREATE TABLE app_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
