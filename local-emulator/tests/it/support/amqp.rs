//! A bare `azure_core_amqp` client: connection, CBS token, sender. Also proves the emulator
//! keeps serving after someone else misbehaved.

use azure_core::credentials::Secret;
use azure_core_amqp::{
    AmqpClaimsBasedSecurity, AmqpClaimsBasedSecurityApis, AmqpConnection, AmqpConnectionApis,
    AmqpConnectionOptions, AmqpSender, AmqpSenderApis, AmqpSession, AmqpSessionApis,
};
use local_emulator::RunningEmulator;
use std::time::Duration;

/// Opens a connection, authorizes `entity` with a SAS token and sends `bodies` to it.
pub async fn send(emu: &RunningEmulator, entity: &str, bodies: &[&str]) -> azure_core::Result<()> {
    let token = emu.sas_token(
        &format!("amqp://127.0.0.1:{}/{entity}", emu.amqp_addr().port()),
        Duration::from_secs(600),
    );
    tokio::time::timeout(
        Duration::from_secs(30),
        send_with_token(emu, entity, &token, bodies),
    )
    .await
    .expect("bare AMQP send finishes within 30s")
}

/// Like [`send`] with a given token.
pub async fn send_with_token(
    emu: &RunningEmulator,
    entity: &str,
    token: &str,
    bodies: &[&str],
) -> azure_core::Result<()> {
    let url: azure_core::http::Url = format!("amqp://127.0.0.1:{}", emu.amqp_addr().port())
        .parse()
        .expect("url");
    let conn = AmqpConnection::new();
    conn.open(
        "bare-test".into(),
        url.clone(),
        Some(AmqpConnectionOptions::default()),
    )
    .await?;
    let cbs_session = AmqpSession::new();
    cbs_session.begin(&conn, None).await?;
    let cbs = AmqpClaimsBasedSecurity::new(cbs_session)?;
    cbs.attach().await?;
    let expires =
        azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::minutes(10);
    cbs.authorize_path(
        format!("{url}{entity}"),
        Some("servicebus.windows.net:sastoken".into()),
        &Secret::new(token.to_owned()),
        expires,
    )
    .await?;
    let session = AmqpSession::new();
    session.begin(&conn, None).await?;
    let sender = AmqpSender::new();
    sender
        .attach(&session, "bare-sender".into(), entity.to_owned(), None)
        .await?;
    for b in bodies {
        match sender.send(b.as_bytes().to_vec(), None).await? {
            azure_core_amqp::AmqpSendOutcome::Accepted => {}
            azure_core_amqp::AmqpSendOutcome::Rejected(e) => {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Other,
                    format!("rejected: {e:?}"),
                ))
            }
            _ => {
                return Err(azure_core::Error::with_message(
                    azure_core::error::ErrorKind::Other,
                    "not accepted",
                ))
            }
        }
    }
    sender.detach().await?;
    conn.close().await?;
    Ok(())
}
