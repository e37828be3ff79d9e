-- Announcement service (issue 14): announcements (a WAV file or a tone sequence,
-- then hang up or transfer to target) and unassigned-number ranges pointing to
-- them (Lync's New-CsAnnouncement and New-CsUnassignedNumber). Part of the voice
-- configuration: written with it, bumping voice_rev.

CREATE TABLE voice_announcements (
    name TEXT NOT NULL PRIMARY KEY,
    audio_file TEXT,
    tones TEXT,
    target TEXT,
    position BIGINT NOT NULL
);

-- range_start/range_end: E.164 with its +, same length, both included.
CREATE TABLE voice_unassigned (
    name TEXT NOT NULL PRIMARY KEY,
    range_start TEXT NOT NULL,
    range_end TEXT NOT NULL,
    announcement TEXT NOT NULL,
    priority BIGINT NOT NULL,
    position BIGINT NOT NULL
);
