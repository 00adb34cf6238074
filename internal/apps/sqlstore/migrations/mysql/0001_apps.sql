-- Herald apps store, schema version 1 (MySQL 5.7+, MariaDB 10.3+). See docs/apps.md.
-- utf8mb4_bin: keys and ids compare case-sensitively, as Pusher's do.
CREATE TABLE IF NOT EXISTS herald_apps (
    id         VARCHAR(255) NOT NULL,
    app_key    VARCHAR(255) NOT NULL,
    secret     VARCHAR(255) NOT NULL,
    enabled    BOOLEAN      NOT NULL DEFAULT TRUE,
    settings   MEDIUMTEXT   NULL,
    created_at TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY herald_apps_app_key (app_key)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
