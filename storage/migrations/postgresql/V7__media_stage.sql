-- The media stage of a succeeded job (its files kept and its backing track made) finished at
-- this time; NULL while it is owed. The stage's own progress is in the job's result
-- (PostgreSQL dialect of the SQLite V7; a column without a default, added without a rewrite).
ALTER TABLE jobs ADD COLUMN prepared_at DOUBLE PRECISION;
