-- Persistent Chat (issue 10): categories, rooms, their role lists, posts, policy and
-- configuration. Portable DDL like the other migrations; the full-text index is
-- backend-specific and created at open time (see crates/store/src/chat.rs).

-- Bumped by every administrative chat change (not by posts): the chat service polls it
-- and reloads its directory. `chat_post` hands out post ids.
INSERT INTO counters (name, value) VALUES ('chat_rev', 0);
INSERT INTO counters (name, value) VALUES ('chat_post', 0);
-- Highest post id already in the full-text index.
INSERT INTO counters (name, value) VALUES ('chat_indexed', 0);

CREATE TABLE chat_categories (
    id TEXT NOT NULL PRIMARY KEY,
    uri TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    file_upload BIGINT NOT NULL,
    chat_history BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE chat_rooms (
    id TEXT NOT NULL PRIMARY KEY,
    uri TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- lower-case name: names are unique per pool, case-insensitively
    name_key TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    category_id TEXT NOT NULL REFERENCES chat_categories (id),
    privacy TEXT NOT NULL,
    room_type TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX chat_rooms_category_idx ON chat_rooms (category_id);

-- Role lists of categories (allowed, denied, creators) and rooms (members, managers,
-- presenters). A principal is a normalized address (`bob@example.com`) or a whole
-- domain (`@example.com`).
CREATE TABLE chat_principals (
    node_id TEXT NOT NULL,
    list TEXT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (node_id, list, principal)
);

-- Posts. `text` is what users see; `original` is the text as posted, kept for
-- compliance when an administrator removes or replaces the post. `state` is
-- active, removed or replaced. `ts` is epoch milliseconds (server time).
CREATE TABLE chat_posts (
    id BIGINT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    author TEXT NOT NULL,
    ts BIGINT NOT NULL,
    text TEXT NOT NULL,
    original TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX chat_posts_room_idx ON chat_posts (room_id, id);
CREATE INDEX chat_posts_author_idx ON chat_posts (author, id);

-- EnablePersistentChat: the global row has user '' ; per-user rows override it.
CREATE TABLE chat_policy (
    user_address TEXT NOT NULL PRIMARY KEY,
    enabled BIGINT NOT NULL
);

CREATE TABLE chat_config (
    key TEXT NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
