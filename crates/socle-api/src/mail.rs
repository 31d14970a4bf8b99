//! Outgoing mail (password reset links) through the configured SMTP relay,
//! with `lettre`. Logs name the user by id: the address stays in the mail.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use socle_domain::{Email, UserId};

use crate::i18n::Lang;
use crate::settings::{SmtpSecurity, SmtpSettings};
use crate::web::texts::Texts;

#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(s: &SmtpSettings) -> Result<Self, String> {
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
        Ok(Self { transport: builder.build(), from })
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
