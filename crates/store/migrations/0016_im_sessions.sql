-- IM sessions (issue 13, Lync's Monitoring role): one row per conversation between
-- two users, written in batches by the front end's monitoring writer. `kind` is
-- `pager` (MESSAGEs between the two with no pause longer than the idle time) or
-- `session` (an INVITE-based IM session, SDP m=message). Times are epoch
-- milliseconds; `ended` is the last activity while `active` is 1; `code` the
-- final answer to the session's INVITE (200 for pager sessions). Internal calls go
-- to call_records (0013) with direction 'internal'.
CREATE TABLE im_sessions (
    id TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL,
    from_user TEXT NOT NULL,
    to_user TEXT NOT NULL,
    started BIGINT NOT NULL,
    ended BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    code BIGINT NOT NULL,
    active BIGINT NOT NULL
);
CREATE INDEX im_sessions_started_idx ON im_sessions (started);
