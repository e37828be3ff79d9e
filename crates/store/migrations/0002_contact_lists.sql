-- Server-side contact lists (Lync "roaming contacts"): per owner a list header with
-- the client-visible deltaNum, its groups and its contacts. Owners and contact URIs
-- are normalized addresses (`alice@example.com`, lower case, no `sip:`).

-- One row per stored list. `rev` is the global revision of the list's last change
-- (the contact change feed reads `rev > N`, like users).
CREATE TABLE contact_lists (
    owner TEXT NOT NULL PRIMARY KEY,
    delta_num BIGINT NOT NULL,
    rev BIGINT NOT NULL
);
CREATE INDEX contact_lists_rev_idx ON contact_lists (rev);

CREATE TABLE contact_groups (
    owner TEXT NOT NULL,
    id BIGINT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (owner, id)
);

-- `groups` holds the contact's group ids, space-separated ("1 3").
CREATE TABLE contacts (
    owner TEXT NOT NULL,
    uri TEXT NOT NULL,
    name TEXT NOT NULL,
    groups TEXT NOT NULL,
    subscribed BIGINT NOT NULL,
    PRIMARY KEY (owner, uri)
);

-- Lists deleted with their owner, so that the change feed can report the removal.
CREATE TABLE contact_list_tombstones (
    owner TEXT NOT NULL PRIMARY KEY,
    rev BIGINT NOT NULL
);
CREATE INDEX contact_list_tombstones_rev_idx ON contact_list_tombstones (rev);
