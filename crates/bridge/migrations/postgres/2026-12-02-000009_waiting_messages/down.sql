DROP TABLE app_waiting_messages;
