-- The Control Panel (issue 17): administrator roles and the audit log.
-- Portable DDL (SQLite and PostgreSQL through sqlx `Any`).

-- One administrative role per user (CsAdministrator, CsUserAdministrator,
-- CsHelpDesk; checked by the application). Removed with the user.
CREATE TABLE admin_roles (
    address TEXT NOT NULL PRIMARY KEY,
    role TEXT NOT NULL,
    granted_at BIGINT NOT NULL
);

-- Every administrative change, from the CLI or the Control Panel: who (a signed-in
-- administrator's address, or `cli:LOGIN`), from where (the client address, or
-- `cli`), what (action and target), when (epoch seconds). `seq` orders the rows.
CREATE TABLE audit_log (
    seq BIGINT NOT NULL PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    detail TEXT
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
INSERT INTO counters (name, value) VALUES ('audit', 0);
