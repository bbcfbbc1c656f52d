-- Where a job's result goes when the server posts results to its karaoke channel
-- (NULL = the channel of the request, which always keeps the status message), and whether
-- the requester also gets a copy by DM. Both are taken from the server's policy when the
-- job is admitted.
ALTER TABLE jobs ADD COLUMN result_channel_id BIGINT;
ALTER TABLE jobs ADD COLUMN dm_on_completion BOOLEAN NOT NULL DEFAULT FALSE;
-- Admission counts a member's unfinished jobs in a server inside its write transaction.
CREATE INDEX jobs_requester_active ON jobs (guild_id, requester_id)
    WHERE state IN ('accepted', 'submitted', 'running');
