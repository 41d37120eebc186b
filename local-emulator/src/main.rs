//! `local-emulator`: serve Service Bus and Event Hubs over AMQP and a webhook sink.

use clap::Parser;
use std::path::PathBuf;

/// Azure Service Bus and Event Hubs over AMQP 1.0 on 127.0.0.1, with a webhook sink.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// AMQP port (0 picks a free one).
    #[arg(long, default_value_t = 5672)]
    port: u16,
    /// HTTP side port: entities, peek, purge, health, webhook sink (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    http_port: u16,
    /// Config.json of Microsoft's Service Bus or Event Hubs emulator; repeatable.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// Keep state in this directory across restarts.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Standard Webhooks secret (whsec_…) the sink verifies with; repeatable.
    #[arg(long)]
    sink_secret: Vec<String>,
    /// Accept JWTs on $cbs without checking them (development only).
    #[arg(long)]
    allow_jwt: bool,
    /// Keep the administration API's certificate here (default: the data directory).
    #[arg(long)]
    cert_dir: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let a = Args::parse();
    let mut b = local_emulator::Emulator::builder()
        .amqp_port(a.port)
        .http_port(a.http_port)
        .allow_jwt(a.allow_jwt);
    for c in a.config {
        b = b.config_file(c);
    }
    for s in a.sink_secret {
        b = b.sink_secret(s);
    }
    if let Some(d) = a.data_dir {
        b = b.data_dir(d);
    }
    if let Some(d) = a.cert_dir {
        b = b.certificate_dir(d);
    }
    let emu = b.start().await?;
    println!("AMQP      {}", emu.amqp_addr());
    println!(
        "HTTP      http://{}  (sink: {})",
        emu.http_addr(),
        emu.sink_url()
    );
    println!("{}", emu.connection_string());
    println!(
        "HTTPS     administration API on the AMQP port; certificate {}",
        emu.certificate_path().display()
    );
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
