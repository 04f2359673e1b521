ALTER TABLE handovers DROP COLUMN transcript;
