-- Several Persistent Chat pools in one topology (issue 11): every category and room
-- belongs to one pool. '' (every existing row) is the topology's default chat pool;
-- another pool is named by its FQDN (lower case). Names stay unique per pool: the
-- `name_key` of a row of another pool is `pool\name` (Lync's `pool\room` identity),
-- so the existing UNIQUE constraints on name_key now hold per pool.
ALTER TABLE chat_categories ADD COLUMN pool TEXT NOT NULL DEFAULT '';
ALTER TABLE chat_rooms ADD COLUMN pool TEXT NOT NULL DEFAULT '';
CREATE INDEX chat_rooms_pool_idx ON chat_rooms (pool);
