//! Outgoing mail (password reset links) through the configured SMTP relay,
//! with `lettre`. Logs name the user by id: the address stays in the mail.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use socle_domain::{Email, UserId};

use crate::i18n::Lang;
use crate::settings::SmtpSettings;
use crate::web::texts::Texts;

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, String> {
        let (transport, from) = socle_notify::smtp_transport(s)?;
        Ok(Self { transport, from })
    }

    /// Sends the reset link; failures are logged (without the address), not returned:
    /// the person asking must get the same answer whatever happens.
    pub async fn send_reset(&self, user: UserId, to: &Email, link: &str, lang: Lang) {
        let t = Texts::of(lang);
        let message = to.as_str().parse::<Mailbox>().map_err(|_| "recipient").and_then(|to| {
            Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(t.mail_subject)
                .header(ContentType::TEXT_PLAIN)
                .body(t.mail_body.replace("{link}", link))
                .map_err(|_| "message")
        });
        let message = match message {
            Ok(m) => m,
            Err(what) => {
                tracing::warn!(%user, what, "reset mail could not be built");
                return;
            }
        };
        match self.transport.send(message).await {
            Ok(_) => tracing::info!(%user, "reset mail handed to the SMTP server"),
            Err(e) => tracing::warn!(
                %user,
                permanent = e.is_permanent(),
                transient = e.is_transient(),
                timeout = e.is_timeout(),
                code = ?e.status().map(|c| c.to_string()),
                "reset mail not sent"
            ),
        }
    }
}
