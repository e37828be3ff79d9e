-- Call detail records (issue 13, Lync's Monitoring role): one row per call the
-- Mediation server carried (outbound to the PSTN, inbound from a gateway), written
-- in batches off the signalling path. Portable DDL like the other migrations.
-- Times are epoch milliseconds; `answered` 0 when the call was not answered;
-- `trunk` '' when none; `attempts` the trunks tried with their codes
-- ("gw1:503 gw2:200"); `relayed_packets` -1 when media bypassed the relay.
CREATE TABLE call_records (
    id TEXT NOT NULL PRIMARY KEY,
    direction TEXT NOT NULL,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    number TEXT NOT NULL,
    trunk TEXT NOT NULL,
    started BIGINT NOT NULL,
    answered BIGINT NOT NULL,
    ended BIGINT NOT NULL,
    code BIGINT NOT NULL,
    attempts TEXT NOT NULL,
    relayed_packets BIGINT NOT NULL
);
CREATE INDEX call_records_started_idx ON call_records (started);
