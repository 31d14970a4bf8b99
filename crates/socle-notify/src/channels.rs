//! The ways out: SMTP (lettre), and HTTP for webhooks, Web Push and the SMS
//! gateway (one reqwest client that follows no redirect and times out).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or network).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The relay all of Socle's mail goes through (the `[smtp]` section):
/// notifications here, sign-in mail in `socle-api`.
#[derive(Clone, PartialEq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Sender, e.g. `Socle <ne-pas-repondre@example.fr>`.
    pub from: String,
}

/// The transport to the relay of `s` and its sender: one way to reach the
/// relay for every kind of mail Socle sends.
pub fn smtp_transport(s: &SmtpSettings) -> Result<(AsyncSmtpTransport<Tokio1Executor>, Mailbox), String> {
    let from: Mailbox = s.from.parse().map_err(|e| format!("smtp.from is not a valid sender: {e}"))?;
    type T = AsyncSmtpTransport<Tokio1Executor>;
    let builder = match s.security {
        SmtpSecurity::None => T::builder_dangerous(&s.host),
        SmtpSecurity::Starttls => T::starttls_relay(&s.host).map_err(|e| format!("smtp.host: {e}"))?,
        SmtpSecurity::Tls => T::relay(&s.host).map_err(|e| format!("smtp.host: {e}"))?,
    };
    let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(20)));
    if let (Some(user), Some(password)) = (&s.username, &s.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok((builder.build(), from))
}

/// An HTTP SMS gateway: `POST url` with a JSON body made from `body_template`,
/// where `{to}` and `{text}` are replaced by the JSON-escaped number and text
/// (so the template writes them inside quotes), and an optional header for
/// authentication (`Authorization: Bearer …`, `X-Api-Key: …`).
#[derive(Clone, PartialEq)]
pub struct SmsGateway {
    pub url: String,
    pub auth_header: Option<(String, String)>,
    pub body_template: String,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway").field("url", &self.url).field("body_template", &self.body_template).finish()
    }
}

/// Longest SMS text sent (longer texts are cut): three concatenated messages.
pub const MAX_SMS_CHARS: usize = 459;

impl SmsGateway {
    pub fn body(&self, to: &str, text: &str) -> String {
        let esc = |s: &str| {
            let quoted = serde_json::Value::from(s).to_string();
            quoted[1..quoted.len() - 1].to_owned()
        };
        let text: String = text.chars().take(MAX_SMS_CHARS).collect();
        self.body_template.replace("{to}", &esc(to)).replace("{text}", &esc(&text))
    }
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("SmtpSettings").field("host", &self.host).field("port", &self.port).finish_non_exhaustive()
    }
}

#[derive(Clone)]
pub(crate) struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, String> {
        let (transport, from) = smtp_transport(s)?;
        Ok(Self { transport, from })
    }

    /// Sends one message; the delivery id goes in a header so that a mail
    /// sent twice (a crash between sending and recording it) can be recognised.
    pub async fn send(&self, to: &str, subject: &str, body: &str, delivery: uuid::Uuid) -> Result<(), Failure> {
        let to: Mailbox = to.parse().map_err(|_| Failure::permanent("recipient address is not valid"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{delivery}@socle>")))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| Failure::permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Failure::permanent(format!("SMTP refused: {e}"))),
            Err(e) => Err(Failure::transient(format!("SMTP: {e}"))),
        }
    }
}

/// Why an attempt failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub permanent: bool,
    pub reason: String,
}

impl Failure {
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self { permanent: true, reason: reason.into() }
    }
    pub fn transient(reason: impl Into<String>) -> Self {
        Self { permanent: false, reason: reason.into() }
    }
}

pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        // A receiver's redirect could point anywhere (an internal address): never follow it.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("Socle/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client settings are valid")
}

/// 2xx delivered; 408, 425, 429 and 5xx (and no answer) worth a retry; other codes final.
pub(crate) fn classify(result: Result<reqwest::Response, reqwest::Error>) -> Result<(), Failure> {
    match result {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let s = r.status().as_u16();
            let reason = format!("HTTP {s}");
            if s >= 500 || matches!(s, 408 | 425 | 429) {
                Err(Failure::transient(reason))
            } else {
                Err(Failure::permanent(reason))
            }
        }
        Err(e) if e.is_timeout() => Err(Failure::transient("timed out")),
        Err(e) => Err(Failure::transient(format!("no answer: {}", e.without_url()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_bodies_escape_and_cut() {
        let g = SmsGateway {
            url: "http://x".into(),
            auth_header: None,
            body_template: r#"{"to": "{to}", "message": "{text}"}"#.into(),
        };
        let body = g.body("+33612345678", "Alerte « fuite » \"x\"\n");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["to"], "+33612345678");
        assert_eq!(v["message"], "Alerte « fuite » \"x\"\n");
        let long = g.body("+33612345678", &"é".repeat(1000));
        let v: serde_json::Value = serde_json::from_str(&long).unwrap();
        assert_eq!(v["message"].as_str().unwrap().chars().count(), MAX_SMS_CHARS);
    }
}
