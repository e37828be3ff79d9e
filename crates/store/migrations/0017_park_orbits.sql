-- Call Park (issue 14): orbit ranges (Lync's New-CsCallParkOrbit) with the ring
-- back timeout, the fallback destination and the music on hold. Part of the
-- voice configuration: written with it, bumping voice_rev.

CREATE TABLE voice_park_orbits (
    name TEXT NOT NULL PRIMARY KEY,
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    timeout_secs BIGINT NOT NULL,
    fallback TEXT,
    music_file TEXT,
    music_tones TEXT,
    position BIGINT NOT NULL
);
