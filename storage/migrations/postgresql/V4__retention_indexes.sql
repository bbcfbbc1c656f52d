-- Retention deletes finished jobs by age and cached results by age; metrics ask for the
-- oldest unfinished job. Without these, each would scan the whole table.
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX jobs_state_created ON jobs (state, created_at);
CREATE INDEX results_cache_created ON results_cache (created_at);
