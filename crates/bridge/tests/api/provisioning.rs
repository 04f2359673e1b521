use byoc_bridge::db::{apps as rows, audit};
use byoc_bridge::provisioning::manifest::{Manifest, ManifestError};
use byoc_bridge::provisioning::{Ctx, Outcome};
use byoc_bridge::startup::Services;

use crate::helpers::TestDb;

crate::on_both_backends!(
    apply_is_idempotent_and_converges,
    apply_rolls_back_everything_on_error,
    activation_requires_complete_settings
);

const MANIFEST: &str = r#"
[[app]]
name = "acme"
status = "active"
org_id = "00D5g00000AbCdE"
login_url = "https://test.salesforce.com"
consumer_key = "3MVG9-consumer-key"
integration_username = "integration@acme.example"
private_key_file = "key.pem"
scrt_url = "https://acme.my.salesforce-scrt.com"
channel_address_identifier = "7c0c7f4e-1b1a-4c3f-9a7e-2f4b7a1d5e6f"
authorization_context = "Partner1_ChannelDefinition1"
platform_event = "WhatsApp_Event__e"
welcome_message = "Hang tight, an agent will join shortly."

[[app.infobip_account]]
name = "main"
base_url = "https://xyz.api.infobip.com"
api_key_env = "TEST_INFOBIP_KEY"

[[app.sender]]
number = "+44 7860 099299"
account = "main"

[[app.sender]]
number = "447860099300"
account = "main"
"#;

fn write_manifest(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("key.pem"), crate::helpers::test_private_key()).unwrap();
    let path = dir.join("app.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn env(var: &str) -> Option<String> {
    (var == "TEST_INFOBIP_KEY").then(|| "infobip-key-1".to_owned())
}

async fn apply(services: &Services, path: &std::path::Path) -> Result<Vec<(String, Outcome)>, String> {
    let manifest = Manifest::load(path, &env).map_err(|e| e.to_string())?;
    let cipher = services.cipher.clone();
    services
        .db
        .write(move |c| {
            let ctx = Ctx { cipher: &cipher, actor: "test:apply" };
            manifest.apply(c, &ctx).map_err(anyhow::Error::from).map_err(Into::into)
        })
        .await
        .map(|r| r.lines)
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))
}

async fn audit_count(services: &Services) -> i64 {
    services.db.run(audit::count).await.unwrap()
}

async fn apply_is_idempotent_and_converges(test_db: TestDb) {
    let services = test_db.services().await;
    let path = write_manifest(test_db.dir.path(), MANIFEST);

    let first = apply(&services, &path).await.unwrap();
    assert!(first.iter().any(|(what, o)| what == "app acme" && *o == Outcome::Created));
    assert_eq!(first.iter().filter(|(w, o)| w.starts_with("sender") && *o == Outcome::Created).count(), 2);
    let audited = audit_count(&services).await;
    assert!(audited >= 4);

    let app = services.db.run(|c| rows::find(c, "acme")).await.unwrap().expect("app created");
    assert_eq!(app.status, byoc_bridge::db::AppStatus::Active);
    assert_eq!(app.login_url, "https://test.salesforce.com");
    assert_eq!(app.org_type, byoc_bridge::db::OrgType::Sandbox, "a sandbox login host makes a sandbox org");
    let senders = services
        .db
        .run({
            let id = app.id.clone();
            move |c| rows::senders(c, &id)
        })
        .await
        .unwrap();
    let numbers: Vec<&str> = senders.iter().map(|s| s.number.as_str()).collect();
    assert_eq!(numbers, ["447860099299", "447860099300"], "numbers are normalised");

    // Applying the same file again changes nothing and audits nothing.
    let second = apply(&services, &path).await.unwrap();
    assert!(second.iter().all(|(_, o)| *o == Outcome::Unchanged), "{second:?}");
    assert_eq!(audit_count(&services).await, audited);
    let again = services.db.run(|c| rows::find(c, "acme")).await.unwrap().unwrap();
    assert_eq!(again, app, "the row is untouched, timestamps included");

    // Changing one setting and dropping a sender changes exactly that.
    let edited = MANIFEST
        .replace("Hang tight, an agent will join shortly.", "An agent will be with you soon.")
        .replace("[[app.sender]]\nnumber = \"447860099300\"\naccount = \"main\"\n", "");
    let path = write_manifest(test_db.dir.path(), &edited);
    let third = apply(&services, &path).await.unwrap();
    assert!(third.contains(&("app acme".to_owned(), Outcome::Updated(vec!["welcome_message"]))), "{third:?}");
    assert!(third.iter().any(|(w, o)| w.ends_with("9300") && *o == Outcome::Removed), "{third:?}");
    assert_eq!(third.iter().filter(|(_, o)| *o != Outcome::Unchanged).count(), 2, "{third:?}");
}

async fn apply_rolls_back_everything_on_error(test_db: TestDb) {
    let services = test_db.services().await;
    // The app is valid; its sender names an account that does not exist.
    let broken = MANIFEST.replace("account = \"main\"\n\n[[app.sender]]", "account = \"nope\"\n\n[[app.sender]]");
    let path = write_manifest(test_db.dir.path(), &broken);
    let err = apply(&services, &path).await.unwrap_err();
    assert!(err.contains("nope"), "{err}");
    assert!(services.db.run(|c| rows::find(c, "acme")).await.unwrap().is_none(), "nothing was created");
    assert_eq!(audit_count(&services).await, 0);

    // Unknown settings and bad values are refused before anything is written, naming the field.
    let typo = MANIFEST.replace("welcome_message", "welcom_message");
    let path = write_manifest(test_db.dir.path(), &typo);
    let err = apply(&services, &path).await.unwrap_err();
    assert!(err.contains("welcom_message"), "{err}");

    let bad_org = MANIFEST.replace("00D5g00000AbCdE", "12345");
    let path = write_manifest(test_db.dir.path(), &bad_org);
    let err = apply(&services, &path).await.unwrap_err();
    assert!(err.contains("org_id"), "{err}");

    let missing_env = MANIFEST.replace("TEST_INFOBIP_KEY", "NOT_SET_ANYWHERE");
    let path = write_manifest(test_db.dir.path(), &missing_env);
    assert!(matches!(Manifest::load(&path, &env), Err(ManifestError::App { .. })));
    assert!(services.db.run(|c| rows::find(c, "acme")).await.unwrap().is_none());
}

async fn activation_requires_complete_settings(test_db: TestDb) {
    let services = test_db.services().await;
    let path = test_db.dir.path().join("min.toml");
    std::fs::write(&path, "[[app]]\nname = \"bare\"\nstatus = \"active\"\n").unwrap();
    let err = apply(&services, &path).await.unwrap_err();
    assert!(err.contains("status") && err.contains("private_key"), "{err}");

    std::fs::write(&path, "[[app]]\nname = \"bare\"\n").unwrap();
    apply(&services, &path).await.unwrap();
    let app = services.db.run(|c| rows::find(c, "bare")).await.unwrap().unwrap();
    assert_eq!(app.status, byoc_bridge::db::AppStatus::Draft);
}
