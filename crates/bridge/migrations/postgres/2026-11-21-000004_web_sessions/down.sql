DROP TABLE web_grants;
DROP TABLE web_sessions;
