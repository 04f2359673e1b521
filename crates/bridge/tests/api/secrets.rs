use byoc_bridge::db::apps as rows;
use byoc_bridge::db::schema::{apps, infobip_accounts};
use byoc_bridge::provisioning::{self as prov, AppSpec, Ctx};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::{TestDb, test_private_key};

crate::on_both_backends!(secrets_are_stored_encrypted_and_round_trip);

async fn secrets_are_stored_encrypted_and_round_trip(test_db: TestDb) {
    let services = test_db.services().await;
    let cipher = services.cipher.clone();
    let key = test_private_key();
    let key_for_write = key.clone();

    let (app_id, webhook_secret) = services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let spec = AppSpec { private_key: Some(SecretString::from(key_for_write.clone())), ..AppSpec::default() };
            let app = prov::create_app(c, &ctx, "acme", &spec).map_err(anyhow::Error::from)?;
            prov::upsert_account(
                c,
                &ctx,
                &app,
                "main",
                None,
                Some(&SecretString::from("infobip-api-key-123".to_owned())),
            )
            .map_err(anyhow::Error::from)?;
            let secret = prov::webhook_secret(&ctx, &app).map_err(anyhow::Error::from)?;
            Ok((app.id, secret.expose_secret().to_owned()))
        })
        .await
        .unwrap();

    // The raw columns hold ciphertext, never the plaintext.
    let id = app_id.clone();
    let (private_key_enc, webhook_secret_enc, api_key_enc): (Option<String>, String, String) = services
        .db
        .run(move |c| {
            let (p, w) =
                apps::table
                    .find(&id)
                    .select((apps::private_key_enc, apps::webhook_secret_enc))
                    .first::<(Option<String>, String)>(c)?;
            let k = infobip_accounts::table
                .filter(infobip_accounts::app_id.eq(&id))
                .select(infobip_accounts::api_key_enc)
                .first::<String>(c)?;
            Ok((p, w, k))
        })
        .await
        .unwrap();
    let private_key_enc = private_key_enc.expect("private key stored");
    assert!(!private_key_enc.contains("PRIVATE KEY"));
    assert!(!private_key_enc.contains(&key[40..80]));
    assert!(!api_key_enc.contains("infobip-api-key-123"));
    assert!(!webhook_secret_enc.contains(&webhook_secret));
    assert!(webhook_secret.len() >= 40, "webhook secrets are long random tokens");

    // …and decrypt back to exactly what was stored.
    assert_eq!(services.cipher.decrypt(prov::CTX_PRIVATE_KEY, &private_key_enc).unwrap().expose_secret(), key);
    assert_eq!(
        services.cipher.decrypt(prov::CTX_API_KEY, &api_key_enc).unwrap().expose_secret(),
        "infobip-api-key-123"
    );

    // A second app gets its own webhook secret.
    let cipher = services.cipher.clone();
    let other_secret = services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let app = prov::create_app(c, &ctx, "globex", &AppSpec::default()).map_err(anyhow::Error::from)?;
            Ok(prov::webhook_secret(&ctx, &app).map_err(anyhow::Error::from)?.expose_secret().to_owned())
        })
        .await
        .unwrap();
    assert_ne!(other_secret, webhook_secret);

    // Rotation keeps the old secret as the previous one.
    let cipher = services.cipher.clone();
    let (new_secret, previous) = services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test" };
            let mut app = rows::find(c, "acme")?.expect("app");
            let new = prov::rotate_webhook_secret(c, &ctx, &mut app).map_err(anyhow::Error::from)?;
            let previous = cipher
                .decrypt(prov::CTX_WEBHOOK_SECRET, app.webhook_previous_secret_enc.as_deref().unwrap_or_default())
                .map_err(anyhow::Error::from)?;
            Ok((new.expose_secret().to_owned(), previous.expose_secret().to_owned()))
        })
        .await
        .unwrap();
    assert_ne!(new_secret, webhook_secret);
    assert_eq!(previous, webhook_secret);
}
