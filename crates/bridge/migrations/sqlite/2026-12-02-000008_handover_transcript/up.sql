-- A handover from a bot other than Infobip's carries its transcript in the request (JSON, in
-- the shape of Infobip's conversation messages); NULL: read it from Infobip.
ALTER TABLE handovers ADD COLUMN transcript TEXT;
