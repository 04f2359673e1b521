ALTER TABLE messages DROP COLUMN received_at;
ALTER TABLE apps DROP COLUMN webhook_signature_header;
ALTER TABLE apps DROP COLUMN webhook_auth;
