-- Response Groups (issue 14): workflows, queues and agent groups (Lync's
-- New-CsRgsWorkflow, New-CsRgsQueue, New-CsRgsAgentGroup), each kept as a JSON
-- document checked whole by confab_rgs::RgsConfig::build before it is saved,
-- and formal agents' sign-ins. Every write bumps rgs_rev; the server polls it.

INSERT INTO counters (name, value) VALUES ('rgs_rev', 0);

-- kind: 'workflow', 'queue' or 'group'.
CREATE TABLE rgs_objects (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

-- signed_in_at: Unix milliseconds (longest idle counts from it).
CREATE TABLE rgs_signins (
    grp TEXT NOT NULL,
    agent TEXT NOT NULL,
    signed_in_at BIGINT NOT NULL,
    PRIMARY KEY (grp, agent)
);
