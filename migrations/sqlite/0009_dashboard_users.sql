-- Dashboard users: account owners who sign in with email and password and
-- see only the projects they are members of. Times are microseconds.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    -- Lower-cased, so one address is one account.
    email         TEXT NOT NULL UNIQUE,
    -- Argon2id, as a PHC string (algorithm, parameters and salt included).
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE project_members (
    user_id     TEXT NOT NULL REFERENCES users(id),
    project_id  TEXT NOT NULL REFERENCES projects(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, project_id)
);
CREATE INDEX project_members_project ON project_members (project_id);

-- Signed-in browsers. The cookie carries a random token; only its SHA-256 is
-- kept, with the CSRF token every form of that session must send back.
CREATE TABLE dashboard_sessions (
    token_hash  BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);
