-- Herald apps store, schema version 1 (PostgreSQL). See docs/apps.md.
CREATE TABLE IF NOT EXISTS herald_apps (
    id         VARCHAR(255) PRIMARY KEY,
    app_key    VARCHAR(255) NOT NULL UNIQUE,
    secret     VARCHAR(255) NOT NULL,
    enabled    BOOLEAN      NOT NULL DEFAULT TRUE,
    settings   TEXT,
    created_at TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ  NOT NULL DEFAULT now()
);
