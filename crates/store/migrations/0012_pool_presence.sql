-- Presence shared between the front ends of an Enterprise pool (issue 12): the
-- aggregated state of each signed-in user as their home front end last shared
-- it, so that a front end joining the pool knows the other front ends' users at
-- once; changes reach the running front ends by pg_notify on `confab_presence`.
-- A signed-out user has no row. Portable SQL (unused on SQLite).
CREATE TABLE pool_presence (
    pool TEXT NOT NULL,
    address TEXT NOT NULL,
    -- the front end that serves the user and shared the state
    member TEXT NOT NULL,
    -- Lync availability number (3500 online ... 15500 away)
    availability BIGINT NOT NULL,
    activity TEXT,
    note TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (pool, address)
);
