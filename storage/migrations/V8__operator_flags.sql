-- Small on/off facts about the operator's side of the bot that must outlive a restart and be
-- the same for every process on the database, e.g. "the low-credit warning was sent"
-- (bot/credits.py): it is sent once when credits fall below the threshold, and not again
-- until they have risen above it.
CREATE TABLE operator_flags (
    name       TEXT PRIMARY KEY,
    value      INTEGER NOT NULL CHECK (value IN (0, 1)),
    changed_at REAL NOT NULL
);
