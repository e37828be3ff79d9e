-- Trunks from the topology's PSTN gateways (issue 13): `confab topology publish`
-- creates, updates and removes the trunks it made (from_topology = 1) and leaves
-- the trunks made with `confab voice trunk add` (0) alone.
ALTER TABLE voice_trunks ADD COLUMN from_topology BIGINT NOT NULL DEFAULT 0;
