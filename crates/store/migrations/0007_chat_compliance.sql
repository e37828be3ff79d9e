-- Persistent Chat compliance (issue 11): an outbox of compliance events, written in the
-- same transaction as the post or administrative change it records (joins, leaves and
-- history reads are written before their reply is sent), drained into the compliance
-- database by the compliance service (crates/compliance) and then deleted here.
-- Portable DDL like the other migrations.

-- `enabled` (0/1) is set by `confab serve` from its configuration: while 0 nothing is
-- written to the outbox (a CLI run beside the server reads it in its transaction).
CREATE TABLE chat_compliance_state (
    key TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO chat_compliance_state (key, value) VALUES ('enabled', 0);

-- One event. `id` is its key in the compliance database too (delivery is at least
-- once, the insert there idempotent). `kind`: JOIN, PART, CHAT, BACKCHAT, REMOVE,
-- REPLACE (FILEUPLOAD, FILEDOWNLOAD later). `ts` is epoch milliseconds; `post_id` 0
-- when the event is not about a post; `original` is the text as posted (REMOVE,
-- REPLACE).
CREATE TABLE chat_compliance_outbox (
    id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    room_id TEXT NOT NULL,
    room_uri TEXT NOT NULL,
    room_name TEXT NOT NULL,
    user_address TEXT NOT NULL,
    ts BIGINT NOT NULL,
    post_id BIGINT NOT NULL,
    content TEXT NOT NULL,
    original TEXT NOT NULL
);
CREATE INDEX chat_compliance_outbox_ts_idx ON chat_compliance_outbox (ts);
