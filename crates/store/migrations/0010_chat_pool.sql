-- Persistent Chat pools (issue 11): the chat servers sharing one persistent-chat
-- store. Portable SQL (on SQLite a pool of one writes its row and nobody listens).
-- Times are epoch milliseconds written by the servers.

-- One row per chat server that ever ran on this store. A server writes its row
-- every heartbeat (with its load, for `confab chat status`); it is live while its
-- heartbeat is younger than the lease. `state` is what the server serves as:
-- active (front ends route users to it) or passive (standing by).
CREATE TABLE chat_servers (
    server TEXT NOT NULL PRIMARY KEY,
    pool TEXT NOT NULL,
    -- where front ends send it SIP (ip:port, TCP)
    sip_addr TEXT NOT NULL,
    state TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    joined BIGINT NOT NULL,
    rooms BIGINT NOT NULL,
    posts BIGINT NOT NULL,
    deliveries BIGINT NOT NULL,
    -- over the last heartbeat interval, in thousandths per second
    post_rate_milli BIGINT NOT NULL,
    delivery_rate_milli BIGINT NOT NULL
);

-- An administrator's choice (`confab chat pool activate|deactivate`), which
-- overrides the topology's `persistent_chat = "active" | "passive"`.
CREATE TABLE chat_server_state (
    server TEXT NOT NULL PRIMARY KEY,
    state TEXT NOT NULL,
    changed_ms BIGINT NOT NULL
);
