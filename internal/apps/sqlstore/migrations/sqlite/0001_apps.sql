-- Herald apps store, schema version 1 (SQLite). See docs/apps.md.
CREATE TABLE IF NOT EXISTS herald_apps (
    id         TEXT    NOT NULL PRIMARY KEY,
    app_key    TEXT    NOT NULL UNIQUE,
    secret     TEXT    NOT NULL,
    enabled    INTEGER NOT NULL DEFAULT 1,
    settings   TEXT,
    created_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
