//! Table definitions shared by both backends. Only portable SQL types are used
//! (`Text`, `Integer`, `BigInt`, `Timestamp`), so one schema serves SQLite and PostgreSQL.
//! Keep in step with `migrations/sqlite` and `migrations/postgres`; the migration tests
//! read every column through these definitions on both backends.

diesel::table! {
    apps (id) {
        id -> Text,
        name -> Text,
        status -> Text,
        org_id -> Nullable<Text>,
        login_url -> Text,
        instance_url -> Nullable<Text>,
        consumer_key -> Nullable<Text>,
        integration_username -> Nullable<Text>,
        private_key_enc -> Nullable<Text>,
        certificate_pem -> Nullable<Text>,
        scrt_url -> Nullable<Text>,
        channel_address_identifier -> Nullable<Text>,
        authorization_context -> Nullable<Text>,
        platform_event -> Nullable<Text>,
        event_type_field -> Text,
        payload_field -> Text,
        pubsub_endpoint -> Nullable<Text>,
        welcome_message -> Text,
        closing_message -> Text,
        webhook_hmac_algorithm -> Text,
        webhook_secret_enc -> Text,
        webhook_previous_secret_enc -> Nullable<Text>,
        webhook_basic_username -> Nullable<Text>,
        webhook_basic_password_enc -> Nullable<Text>,
        api_token_hash -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        webhook_auth -> Text,
        webhook_signature_header -> Text,
        transcript_import -> Text,
        transcript_labels -> Text,
        org_type -> Text,
    }
}

diesel::table! {
    app_waiting_messages (app_id) {
        app_id -> Text,
        queue -> Text,
        wait -> Text,
    }
}

diesel::table! {
    infobip_accounts (id) {
        id -> Text,
        app_id -> Text,
        name -> Text,
        base_url -> Text,
        api_key_enc -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    senders (id) {
        id -> Text,
        app_id -> Text,
        infobip_account_id -> Text,
        number -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        app_id -> Text,
        end_user_id -> Text,
        sender_number -> Text,
        sf_conversation_id -> Nullable<Text>,
        messaging_session_id -> Nullable<Text>,
        last_inbound_at -> Nullable<Timestamp>,
        state -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        marketing_opted_out_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        app_id -> Text,
        conversation_id -> BigInt,
        direction -> Text,
        provider_message_id -> Text,
        sf_entry_id -> Nullable<Text>,
        kind -> Text,
        body -> Nullable<Text>,
        body_purge_after -> Nullable<Timestamp>,
        status -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        read_at -> Nullable<Timestamp>,
        updated_at -> Timestamp,
        received_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        kind -> Text,
        app_id -> Nullable<Text>,
        ordering_key -> Nullable<Text>,
        payload -> Text,
        state -> Text,
        attempts -> Integer,
        run_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        dead_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    job_attempts (id) {
        id -> BigInt,
        job_id -> BigInt,
        kind -> Text,
        app_id -> Nullable<Text>,
        ordering_key -> Nullable<Text>,
        message_id -> Nullable<BigInt>,
        attempt -> Integer,
        outcome -> Text,
        error -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    event_cursors (app_id, topic) {
        app_id -> Text,
        topic -> Text,
        replay_id -> Nullable<Text>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        entity -> Text,
        entity_id -> Text,
        details -> Text,
    }
}

diesel::table! {
    handovers (id) {
        id -> Text,
        app_id -> Text,
        infobip_conversation_id -> Text,
        conversation_id -> BigInt,
        routing_attributes -> Text,
        status -> Text,
        method -> Nullable<Text>,
        transcript_messages -> Integer,
        imported_messages -> Integer,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        transcript -> Nullable<Text>,
    }
}

diesel::table! {
    proactive_conversations (id) {
        id -> Text,
        app_id -> Text,
        conversation_id -> BigInt,
        routing_attributes -> Text,
        template -> Nullable<Text>,
        status -> Text,
        template_message_id -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    web_sessions (id_hash) {
        id_hash -> Text,
        app_id -> Nullable<Text>,
        role -> Text,
        user_id -> Text,
        user_name -> Text,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    web_grants (id_hash) {
        id_hash -> Text,
        kind -> Text,
        app_id -> Nullable<Text>,
        data -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(infobip_accounts -> apps (app_id));
diesel::joinable!(senders -> apps (app_id));
diesel::joinable!(senders -> infobip_accounts (infobip_account_id));
diesel::joinable!(conversations -> apps (app_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(jobs -> apps (app_id));
diesel::joinable!(job_attempts -> apps (app_id));
diesel::joinable!(event_cursors -> apps (app_id));
diesel::joinable!(handovers -> conversations (conversation_id));
diesel::joinable!(proactive_conversations -> conversations (conversation_id));

diesel::joinable!(app_waiting_messages -> apps (app_id));

diesel::allow_tables_to_appear_in_same_query!(
    apps,
    app_waiting_messages,
    infobip_accounts,
    senders,
    conversations,
    messages,
    jobs,
    job_attempts,
    event_cursors,
    audit_log,
    handovers,
    proactive_conversations,
    web_sessions,
    web_grants,
);
