//! The `PATCH /api/v1/capabilities` request (the Interaction API's `CapabilitiesRequest`):
//! which message and format types the channel shows, with the limits of each field, so
//! Salesforce offers an agent only what will arrive. The values are WhatsApp's, as Infobip
//! documents them: text up to 4,096 characters; images (JPEG, PNG) up to 5 MB, video (MP4,
//! 3GPP), audio (AAC, AMR, MPEG, MP4, OGG) up to 16 MB, documents (PDF) up to 100 MB; reply
//! buttons (at most 3, titles up to 20 characters) and list pickers (at most 10 rows, titles
//! up to 24); typing shown while an agent or bot works.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CapabilitiesRequest {
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    pub app_type: &'static str,
    pub channel_capabilities: Vec<ChannelCapabilities>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelCapabilities {
    pub channel_type: &'static str,
    pub custom_integration: CustomIntegration,
    pub message_type_capabilities: Vec<MessageTypeCapabilities>,
    pub progress_indicator_type_capabilities: Vec<ProgressIndicatorCapabilities>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CustomIntegration {
    pub custom_integration_type: &'static str,
    pub integration_namespace: String,
    pub conversation_channel_definition_dev_name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageTypeCapabilities {
    pub message_type: &'static str,
    pub format_type_capabilities: Vec<FormatCapability>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgressIndicatorCapabilities {
    pub progress_indicator_type: &'static str,
    pub format_type_capabilities: Vec<FormatCapability>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FormatCapability {
    pub format_type: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub capability_field_restriction: Vec<FieldRestriction>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FieldRestriction {
    pub field_json_path: &'static str,
    pub restriction: Restriction,
}

/// The restriction kinds the bridge states (the schema's `AbstractFieldRestriction`).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "fieldRestrictionType")]
pub enum Restriction {
    StringFieldRestriction {
        encoding: &'static str,
        #[serde(rename = "maxLength")]
        max_length: i64,
    },
    MimeTypeRestriction {
        #[serde(rename = "mimeType")]
        mime_type: &'static str,
    },
    FileSizeRestriction {
        #[serde(rename = "maxSizeInKb")]
        max_size_in_kb: i64,
    },
    ArrayRestriction {
        #[serde(rename = "maxItems")]
        max_items: i64,
    },
}

/// What WhatsApp accepts as a file, and how large: (MIME type, KB).
const MEDIA: &[(&str, i64)] = &[
    ("image/jpeg", 5 * 1024),
    ("image/png", 5 * 1024),
    ("video/mp4", 16 * 1024),
    ("video/3gpp", 16 * 1024),
    ("audio/aac", 16 * 1024),
    ("audio/amr", 16 * 1024),
    ("audio/mpeg", 16 * 1024),
    ("audio/mp4", 16 * 1024),
    ("audio/ogg", 16 * 1024),
    ("application/pdf", 100 * 1024),
];

fn text(path: &'static str, max_length: i64) -> FieldRestriction {
    FieldRestriction {
        field_json_path: path,
        restriction: Restriction::StringFieldRestriction { encoding: "UTF8", max_length },
    }
}

fn items(path: &'static str, max_items: i64) -> FieldRestriction {
    FieldRestriction { field_json_path: path, restriction: Restriction::ArrayRestriction { max_items } }
}

fn format(format_type: &'static str, restrictions: Vec<FieldRestriction>) -> FormatCapability {
    FormatCapability { format_type, capability_field_restriction: restrictions }
}

/// WhatsApp's capabilities for the channel of `definition` (the authorization context), in
/// the org's namespace.
pub fn whatsapp(definition: &str, namespace: &str) -> CapabilitiesRequest {
    let mut attachments = vec![items("$.attachments", 1)];
    for (mime_type, _) in MEDIA {
        attachments.push(FieldRestriction {
            field_json_path: "$.attachments[*].mimeType",
            restriction: Restriction::MimeTypeRestriction { mime_type },
        });
    }
    let largest = MEDIA.iter().map(|(_, kb)| *kb).max().unwrap_or(0);
    attachments.push(FieldRestriction {
        field_json_path: "$.attachments[*]",
        restriction: Restriction::FileSizeRestriction { max_size_in_kb: largest },
    });
    let static_content = MessageTypeCapabilities {
        message_type: "StaticContentMessage",
        format_type_capabilities: vec![format("Text", vec![text("$.text", 4096)]), format("Attachments", attachments)],
    };
    let choices = MessageTypeCapabilities {
        message_type: "ChoicesMessage",
        format_type_capabilities: vec![
            format("Buttons", vec![items("$.optionItems", 3), text("$.optionItems[*].titleItem.title", 20)]),
            format("ListPicker", vec![items("$.optionItems", 10), text("$.optionItems[*].titleItem.title", 24)]),
        ],
    };
    CapabilitiesRequest {
        capabilities: Capabilities {
            app_type: "custom",
            channel_capabilities: vec![ChannelCapabilities {
                channel_type: "custom",
                custom_integration: CustomIntegration {
                    custom_integration_type: "CustomChannelIntegration",
                    integration_namespace: namespace.to_owned(),
                    conversation_channel_definition_dev_name: definition.to_owned(),
                },
                message_type_capabilities: vec![static_content, choices],
                progress_indicator_type_capabilities: vec![ProgressIndicatorCapabilities {
                    progress_indicator_type: "ProgressUpdateIndicator",
                    format_type_capabilities: vec![format("Text", Vec::new())],
                }],
            }],
        },
    }
}
