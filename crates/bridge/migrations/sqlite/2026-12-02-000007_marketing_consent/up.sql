-- WhatsApp's marketing STOP of a customer, per business number: marketing templates wait until
-- the customer resumes (NULL: not opted out).
ALTER TABLE conversations ADD COLUMN marketing_opted_out_at TIMESTAMP;
