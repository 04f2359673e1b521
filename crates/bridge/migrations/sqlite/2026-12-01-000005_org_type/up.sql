-- Whether the app's org is a production org or a sandbox: it decides the audience of the JWT
-- bearer assertion (https://login.salesforce.com or https://test.salesforce.com), whatever host
-- the token is requested from (the org's My Domain may serve both).
ALTER TABLE apps ADD COLUMN org_type TEXT NOT NULL DEFAULT 'production' CHECK (org_type IN ('production', 'sandbox'));
-- Apps set up before signed in through the sandbox login host or a sandbox My Domain.
UPDATE apps SET org_type = 'sandbox'
WHERE login_url LIKE 'https://test.salesforce.com%' OR login_url LIKE '%.sandbox.my.salesforce.com%';
