DROP TABLE audit_log;
DROP TABLE event_cursors;
DROP TABLE jobs;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE senders;
DROP TABLE infobip_accounts;
DROP TABLE apps;
