ALTER TABLE conversations DROP COLUMN marketing_opted_out_at;
