//! Notifications of alerts (issue 6): who wants to know (per-user
//! subscriptions, per-organisation webhooks), when (quiet hours, escalation
//! to another person when an alert stays unacknowledged), and how (e-mail,
//! Web Push, HMAC-signed webhook, SMS through an HTTP gateway).
//!
//! [`Notifier::notify`] turns one [`AlertNotice`] into outbox rows, one per
//! channel and recipient, written in one transaction; [`Notifier::run`]
//! delivers due rows, retrying with exponential backoff, each under a stable
//! delivery id that receivers can use to drop duplicates.

pub mod channels;
pub mod notice;
pub mod notifier;
pub mod subscription;
pub mod text;
pub mod webhook;
pub mod webpush;

pub use channels::{smtp_transport, SmsGateway, SmtpSecurity, SmtpSettings};
pub use notice::{AlertNotice, AlertStatus, NoticeKind, Visibility};
pub use notifier::{Notifier, NotifyConfig, NotifyError};
pub use socle_rules::Severity;
pub use subscription::{Channels, Escalation, QuietHours, SpecError, SubscriptionSpec, WebhookSpec, DOMAINS};
pub use webpush::VapidKey;
