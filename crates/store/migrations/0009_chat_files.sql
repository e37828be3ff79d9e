-- Persistent Chat file posts (issue 11): a file uploaded to a room through the web
-- service. The bytes live in the file store (a folder under the data directory on
-- Standard Edition), under the name `id`; this row is written in the transaction
-- that stores the file's post, after the file got its final name, so a file is
-- visible (listed, downloadable) only once both exist. Portable DDL.
CREATE TABLE chat_files (
    id TEXT NOT NULL PRIMARY KEY,
    room_id TEXT NOT NULL,
    post_id BIGINT NOT NULL,
    author TEXT NOT NULL,
    name TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    ts BIGINT NOT NULL
);
CREATE INDEX chat_files_room_idx ON chat_files (room_id);
