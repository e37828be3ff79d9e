-- Enterprise Voice (issue 13): line URIs, dial plans and their normalization rules,
-- voice policies, PSTN usages, routes, trunks and their translation rules. Portable
-- DDL like the other migrations. Ordered lists are a `position` column (rules,
-- usages, routes) or a space-separated list of names (a policy's usages, a route's
-- usages and trunks; names never contain spaces).

-- Bumped by every voice change: the server polls it and reloads the configuration.
INSERT INTO counters (name, value) VALUES ('voice_rev', 0);

-- scope: global, site:NAME, pool:FQDN or a user-scope name.
CREATE TABLE voice_dial_plans (
    scope TEXT NOT NULL PRIMARY KEY,
    description TEXT,
    position BIGINT NOT NULL
);

-- owner: dialplan:SCOPE (normalization rules) or trunk:NAME (translation rules).
CREATE TABLE voice_rules (
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    position BIGINT NOT NULL,
    pattern TEXT NOT NULL,
    translation TEXT NOT NULL,
    PRIMARY KEY (owner, name)
);

CREATE TABLE voice_policies (
    scope TEXT NOT NULL PRIMARY KEY,
    usages TEXT NOT NULL,
    position BIGINT NOT NULL
);

CREATE TABLE voice_usages (
    name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL
);

CREATE TABLE voice_routes (
    name TEXT NOT NULL PRIMARY KEY,
    position BIGINT NOT NULL,
    pattern TEXT NOT NULL,
    usages TEXT NOT NULL,
    trunks TEXT NOT NULL
);

-- gateway: IP:PORT; transport: udp, tcp or tls.
CREATE TABLE voice_trunks (
    name TEXT NOT NULL PRIMARY KEY,
    gateway TEXT NOT NULL,
    transport TEXT NOT NULL,
    position BIGINT NOT NULL
);

-- A user's number (E.164 with its +, unique across the deployment) and user-scope
-- dial plan and voice policy.
CREATE TABLE voice_users (
    address TEXT NOT NULL PRIMARY KEY,
    line_uri TEXT UNIQUE,
    dial_plan TEXT,
    voice_policy TEXT
);
