//! The subcommands: each fetches, calls the pure helpers of the library, and prints.

mod act;
mod approve;
mod audit;
mod audit_log;
mod history;
mod lint;

use std::process::ExitCode;

use anyhow::{Context, Result};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kubectl_rollgate::render;
use rollgate_crds::duration::parse_duration;
use rollgate_crds::rollout::UserActionKind;

use crate::args::{AuditCommand, Cli, Command, Output};
use crate::connect::{Connection, connect};

/// Runs the command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Lint { files } = &cli.command {
        return lint::run(files);
    }
    if let Command::Audit {
        command:
            AuditCommand::Keygen {
                key_name,
                private_key,
                public_key,
            },
    } = &cli.command
    {
        return audit_log::keygen(key_name, private_key, public_key);
    }
    let connection = connect(&cli).await?;
    let wait = cli.wait;
    match cli.command {
        Command::List => list(&connection).await,
        Command::Get { name, output } => get(&connection, &name, output).await,
        Command::Status {
            name,
            watch,
            timeout,
        } => {
            if watch {
                let timeout =
                    parse_duration(&timeout).with_context(|| format!("--timeout {timeout:?}"))?;
                crate::watch::run(&connection, &name, timeout).await
            } else {
                let rollout = connection.rollouts().get(&name).await.context(name)?;
                print!("{}", render::status_view(&rollout));
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Approve { name, comment } => approve::run(&connection, &name, true, comment).await,
        Command::Reject { name, comment } => {
            approve::run(&connection, &name, false, Some(comment)).await
        }
        Command::Promote { name, full } => {
            let kind = if full {
                UserActionKind::PromoteFull
            } else {
                UserActionKind::Promote
            };
            act::run(&connection, &name, kind, None, wait).await
        }
        Command::Abort { name, reason } => {
            act::run(&connection, &name, UserActionKind::Abort, reason, wait).await
        }
        Command::Retry { name } => {
            act::run(&connection, &name, UserActionKind::Retry, None, wait).await
        }
        Command::Pause { name } => {
            act::run(&connection, &name, UserActionKind::Pause, None, wait).await
        }
        Command::Resume { name } => {
            act::run(&connection, &name, UserActionKind::Resume, None, wait).await
        }
        Command::History { name } => history::run(&connection, &name).await,
        Command::Audit {
            command:
                AuditCommand::Verify {
                    name,
                    public_key: None,
                    ..
                },
        } => audit::verify(&connection, &name).await,
        Command::Audit {
            command:
                AuditCommand::Verify {
                    name,
                    public_key: Some(public_key),
                    store,
                    store_insecure,
                    checkpoints,
                    uid,
                },
        } => {
            let store = store.unwrap_or_default();
            let log = audit_log::LogArgs {
                public_key: &public_key,
                store: (&store, store_insecure),
                checkpoints: &checkpoints,
                uids: &uid,
            };
            audit_log::verify(&connection, &name, log).await
        }
        Command::Audit {
            command:
                AuditCommand::Checkpoint {
                    name,
                    store,
                    store_insecure,
                    uid,
                },
        } => audit_log::checkpoint(&connection, &name, (&store, store_insecure), uid).await,
        Command::Audit {
            command: AuditCommand::Keygen { .. },
        } => unreachable!("handled above"),
        Command::Lint { .. } => unreachable!("handled above"),
    }
}

async fn list(connection: &Connection) -> Result<ExitCode> {
    let list = connection
        .rollouts()
        .list(&ListParams::default())
        .await
        .context("list rollouts")?;
    if list.items.is_empty() {
        eprintln!("No rollouts found in namespace {}.", connection.namespace);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render::rollout_table(&list.items, Timestamp::now()));
    Ok(ExitCode::SUCCESS)
}

async fn get(connection: &Connection, name: &str, output: Output) -> Result<ExitCode> {
    let rollout = connection
        .rollouts()
        .get(name)
        .await
        .with_context(|| format!("get rollout {name}"))?;
    match output {
        Output::Table => print!(
            "{}",
            render::rollout_table(std::slice::from_ref(&rollout), Timestamp::now())
        ),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&rollout)?),
        Output::Json => println!("{}", serde_json::to_string_pretty(&rollout)?),
    }
    Ok(ExitCode::SUCCESS)
}
