-- People signed in to the bridge's pages (admins in the setup wizard, agents in the template
-- panel). The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    app_id TEXT REFERENCES apps (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'agent')),
    user_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);

-- One-time grants: the bootstrap link printed at first start, and Salesforce sign-ins in
-- progress (the PKCE verifier), and sessions handed from the sign-in window to the Salesforce
-- iframe. Also hashed; each is deleted when used.
CREATE TABLE web_grants (
    id_hash TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('bootstrap', 'signin', 'handoff')),
    app_id TEXT REFERENCES apps (id) ON DELETE CASCADE,
    data TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
