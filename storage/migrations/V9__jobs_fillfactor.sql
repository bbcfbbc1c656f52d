-- Version 9 leaves free room in the pages of PostgreSQL's jobs table (fillfactor) so that
-- updates of a job stay on its page. SQLite has no such setting: nothing changes here; the
-- version exists so that both backends count their schema the same way.
SELECT 1;
