-- How Infobip authenticates its webhooks to this app: an HMAC signature in a header (the
-- header name is configurable because Infobip does not document it), or Basic auth.
ALTER TABLE apps ADD COLUMN webhook_auth TEXT NOT NULL DEFAULT 'hmac' CHECK (webhook_auth IN ('hmac', 'basic'));
ALTER TABLE apps ADD COLUMN webhook_signature_header TEXT NOT NULL DEFAULT 'X-Infobip-Signature';
-- When a message's conversation last heard from the end user is on conversations; this is
-- when Infobip received the message (its `receivedAt`), used to keep the original order.
ALTER TABLE messages ADD COLUMN received_at TIMESTAMP;
