//! Email delivery through the `[notify.smtp]` relay (`lettre`): a plain-text message whose
//! subject is the event's summary and whose body carries the same JSON as the webhook.

use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use super::event::Payload;
use super::settings::{SmtpSettings, SmtpTls};
use super::webhook::Attempt;
use crate::domain::Email;

/// The message for `payload`, to `to`.
pub fn message(from: &str, to: &[Email], payload: &Payload) -> Result<Message, String> {
    let from: Mailbox = format!("dirsync <{from}>")
        .parse()
        .map_err(|e| format!("notify.smtp.from: {e}"))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(format!("[dirsync] {}", payload.summary))
        .header(ContentType::TEXT_PLAIN);
    for recipient in to {
        let mailbox: Mailbox = recipient
            .to_string()
            .parse()
            .map_err(|e| format!("recipient {recipient}: {e}"))?;
        builder = builder.to(mailbox);
    }
    let json = serde_json::to_string_pretty(payload).unwrap_or_default();
    let body = format!(
        "{}\n\nTenant: {}\nEvent: {}\nAt: {}\n\nThe notification as JSON (the same as the webhook's body):\n\n{json}\n",
        payload.summary,
        payload.tenant,
        payload.event.kind().as_str(),
        payload.at.to_rfc3339(),
    );
    builder.body(body).map_err(|e| e.to_string())
}

/// Sends `message` through the relay.
pub async fn send(smtp: &SmtpSettings, message: Message, timeout: Duration) -> Attempt {
    let builder = match smtp.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
    };
    let mut builder = match builder {
        Ok(builder) => builder.port(smtp.port).timeout(Some(timeout)),
        Err(err) => return Attempt::Permanent(format!("notify.smtp: {err}")),
    };
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    match builder.build().send(message).await {
        Ok(_) => Attempt::Delivered,
        Err(err) if err.is_permanent() => {
            Attempt::Permanent(format!("the mail relay refused it: {err}"))
        }
        Err(err) => Attempt::Transient(format!("could not hand it to the mail relay: {err}")),
    }
}
