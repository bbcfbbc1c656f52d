-- Progress shown on status messages (queue position and ETA) reads these two indexes.

-- A job's position among its server's unfinished jobs, oldest first.
CREATE INDEX jobs_guild_unfinished ON jobs (guild_id, created_at)
    WHERE state IN ('accepted', 'submitted', 'running');
-- The median duration of the most recent jobs of a model that ran a Vidgo task and succeeded
-- (answers from the cache and followers of an identical job would make it look too short).
CREATE INDEX jobs_model_succeeded ON jobs (model, finished_at)
    WHERE outcome = 'succeeded' AND vidgo_task_id IS NOT NULL;
