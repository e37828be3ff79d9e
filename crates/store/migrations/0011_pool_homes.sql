-- Several pools in one topology (issue 12, users homed on pools and the
-- Director). The directory (users, contact lists) is shared by every pool of the
-- topology, like Lync's Active Directory and Central Management Store; what is
-- per pool is keyed by the pool's name (pool_members, pool_user_home).

-- The pool each user is homed on (`confab user add --pool`, `confab user move`).
-- A user without a row belongs to the default pool: every front end serves them
-- as its own (a Standard Edition server, a topology of one pool).
CREATE TABLE user_pools (
    address TEXT NOT NULL PRIMARY KEY,
    pool TEXT NOT NULL,
    assigned_ms BIGINT NOT NULL
);
CREATE INDEX user_pools_pool_idx ON user_pools (pool);

-- What each pool of pool_members is: `front-end` (users are homed on it) or
-- `director` (authenticates and sends users to their pool; homes no one).
-- Written by `confab serve` when it joins.
CREATE TABLE pool_kinds (
    pool TEXT NOT NULL PRIMARY KEY,
    kind TEXT NOT NULL
);
