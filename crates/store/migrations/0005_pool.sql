-- Enterprise pools acting as one (issue 12): the front ends of a pool and the
-- home front end of each user, in the pool's back end. Portable SQL: the tables
-- exist on SQLite too, where nothing uses them (a Standard Edition server is a
-- pool of one). Times are epoch milliseconds written by the front ends.

-- One row per front end that ever joined the pool. A front end writes its row
-- every heartbeat; it is live while its heartbeat is younger than the lease.
CREATE TABLE pool_members (
    pool TEXT NOT NULL,
    member TEXT NOT NULL,
    -- where the pool's other front ends send it SIP (ip:port, UDP and TCP)
    sip_addr TEXT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    started_ms BIGINT NOT NULL,
    registrations BIGINT NOT NULL,
    PRIMARY KEY (pool, member)
);

-- The home front end of a user: sticky, assigned at first sign-in to the least
-- loaded live front end, reassigned only when that front end is dead.
CREATE TABLE pool_user_home (
    address TEXT NOT NULL PRIMARY KEY,
    pool TEXT NOT NULL,
    member TEXT NOT NULL,
    assigned_ms BIGINT NOT NULL
);
CREATE INDEX pool_user_home_member_idx ON pool_user_home (pool, member);
