-- How a chatbot's transcript reaches Salesforce at handover: `auto` tries the
-- conversationHistory API and falls back to entries when the org refuses it (BYOC for
-- Messaging orgs do), `entries` always posts labelled entries, `history` never falls back.
ALTER TABLE apps ADD COLUMN transcript_import TEXT NOT NULL DEFAULT 'auto' CHECK (transcript_import IN ('auto', 'entries', 'history'));
-- Speaker labels put before bot, system and agent turns when they are posted as entries
-- (Salesforce shows every partner entry as the end user's): a JSON object
-- {"bot": …, "system": …, "agent": …}; one column keeps apps within diesel's 32 columns.
ALTER TABLE apps ADD COLUMN transcript_labels TEXT NOT NULL DEFAULT '{"bot":"Bot","system":"System","agent":"Agent"}';

-- A chatbot's handover of a conversation to a human. One per Infobip conversation: a
-- repeated call finds the same row and imports nothing twice.
CREATE TABLE handovers (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    infobip_conversation_id TEXT NOT NULL,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    routing_attributes TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL CHECK (status IN ('accepted', 'importing', 'imported', 'failed')),
    method TEXT,
    transcript_messages INTEGER NOT NULL DEFAULT 0,
    imported_messages INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (app_id, infobip_conversation_id)
);
CREATE INDEX handovers_conversation_id ON handovers (conversation_id);

-- A conversation the business starts (POST /api/conversations). One per (app, end user)
-- while its messaging session is open.
CREATE TABLE proactive_conversations (
    id TEXT PRIMARY KEY NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    routing_attributes TEXT NOT NULL DEFAULT '{}',
    template TEXT,
    status TEXT NOT NULL CHECK (status IN ('pending', 'established', 'template_sent', 'failed')),
    template_message_id TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (conversation_id)
);
