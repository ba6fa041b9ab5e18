-- Schema 3: the filter indexes carry the other filter columns.
--
-- A query is driven by one index (the one with the fewest events for the
-- filter, plan.go) in time order; the filter's other conditions were
-- checked on the table row, one row lookup per event of the index
-- (about 7 µs each: "a person's deletes in one namespace" read 25,000 rows
-- for 25 events, 180 ms of CPU on 5 million events). With the other
-- filter columns after ts in every index, SQLite checks them in the index
-- and looks up only the rows that match (its deferred seek). The columns
-- are small integers (dictionary ids, the code): each entry grows by about
-- 8 bytes.
DROP INDEX events_user;
CREATE INDEX events_user ON events (username, ts, verb, resource, namespace, code, gset, source);
DROP INDEX events_gset;
CREATE INDEX events_gset ON events (gset, ts, username, verb, resource, namespace, code, source);
DROP INDEX events_verb;
CREATE INDEX events_verb ON events (verb, ts, username, resource, namespace, code, gset, source) WHERE verb > 3;
DROP INDEX events_resource;
CREATE INDEX events_resource ON events (resource, ts, username, verb, namespace, code, gset, source);
DROP INDEX events_namespace;
CREATE INDEX events_namespace ON events (namespace, ts, username, verb, resource, code, gset, source);
DROP INDEX events_source;
CREATE INDEX events_source ON events (source, ts, username, verb, resource, namespace, code, gset);
DROP INDEX events_code;
CREATE INDEX events_code ON events (code, ts, username, verb, resource, namespace, gset, source) WHERE code >= 400;
DROP INDEX events_name;
CREATE INDEX events_name ON events (nb, name, namespace, resource, ts, username, verb, code, gset, source)
