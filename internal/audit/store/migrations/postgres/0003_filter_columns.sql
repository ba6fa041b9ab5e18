-- Schema 3 widens SQLite's filter indexes with the other filter columns
-- (see the SQLite migration): SQLite drives a query by one index and
-- checked the other conditions row by row. PostgreSQL combines several
-- indexes itself (bitmap AND) and plans from per-value statistics, so its
-- indexes stay as they are; the version is recorded so that both engines
-- count the same schema.
SELECT 1
