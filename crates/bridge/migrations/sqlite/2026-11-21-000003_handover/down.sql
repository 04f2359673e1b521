DROP TABLE proactive_conversations;
DROP TABLE handovers;
ALTER TABLE apps DROP COLUMN transcript_labels;
ALTER TABLE apps DROP COLUMN transcript_import;
