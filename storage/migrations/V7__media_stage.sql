-- The media stage of a succeeded job (its files kept and its backing track made) finished at
-- this time; NULL while it is owed. The stage's own progress is in the job's result.
ALTER TABLE jobs ADD COLUMN prepared_at REAL;
