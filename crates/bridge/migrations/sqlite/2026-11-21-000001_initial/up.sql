-- One Salesforce org + messaging channel connected to WhatsApp through Infobip.
-- Columns ending in _enc hold AES-256-GCM ciphertext (see src/crypto.rs), never plaintext.
CREATE TABLE apps (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'disabled')),
    org_id TEXT,
    login_url TEXT NOT NULL DEFAULT 'https://login.salesforce.com',
    instance_url TEXT,
    consumer_key TEXT,
    integration_username TEXT,
    private_key_enc TEXT,
    certificate_pem TEXT,
    scrt_url TEXT,
    channel_address_identifier TEXT,
    authorization_context TEXT,
    platform_event TEXT,
    event_type_field TEXT NOT NULL DEFAULT 'EventType__c',
    payload_field TEXT NOT NULL DEFAULT 'Payload__c',
    pubsub_endpoint TEXT,
    welcome_message TEXT NOT NULL DEFAULT '',
    closing_message TEXT NOT NULL DEFAULT '',
    webhook_hmac_algorithm TEXT NOT NULL DEFAULT 'HMAC_SHA_256',
    webhook_secret_enc TEXT NOT NULL,
    webhook_previous_secret_enc TEXT,
    webhook_basic_username TEXT,
    webhook_basic_password_enc TEXT,
    api_token_hash TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE infobip_accounts (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    api_key_enc TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (app_id, name)
);

-- A WhatsApp sender number belongs to exactly one app: the shared inbound webhook path routes by it.
CREATE TABLE senders (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    infobip_account_id TEXT NOT NULL REFERENCES infobip_accounts (id) ON DELETE CASCADE,
    number TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX senders_app_id ON senders (app_id);

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    end_user_id TEXT NOT NULL,
    sender_number TEXT NOT NULL,
    sf_conversation_id TEXT,
    messaging_session_id TEXT,
    last_inbound_at TIMESTAMP,
    state TEXT NOT NULL DEFAULT 'open',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (app_id, end_user_id, sender_number)
);
CREATE INDEX conversations_sf_conversation_id ON conversations (sf_conversation_id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    provider_message_id TEXT NOT NULL,
    sf_entry_id TEXT,
    kind TEXT NOT NULL,
    body TEXT,
    body_purge_after TIMESTAMP,
    status TEXT NOT NULL,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP,
    read_at TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (app_id, direction, provider_message_id),
    UNIQUE (app_id, sf_entry_id)
);
CREATE INDEX messages_conversation_id ON messages (conversation_id, id);
CREATE INDEX messages_body_purge_after ON messages (body_purge_after);

-- Durable outbox. Finished jobs are deleted; dead letters stay until retried or purged.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    kind TEXT NOT NULL,
    app_id TEXT REFERENCES apps (id) ON DELETE CASCADE,
    ordering_key TEXT,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    run_at TIMESTAMP NOT NULL,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    dead_at TIMESTAMP
);
CREATE INDEX jobs_state_run_at ON jobs (state, run_at);
CREATE INDEX jobs_ordering_key ON jobs (ordering_key, id);

CREATE TABLE event_cursors (
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    topic TEXT NOT NULL,
    replay_id TEXT,
    lease_owner TEXT,
    lease_until TIMESTAMP,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (app_id, topic)
);

-- Who changed which configuration, when. Never holds secret values, only the names of changed fields.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id);
