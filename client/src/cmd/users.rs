//! `peagectl user`: submission accounts, their passwords (read from standard input, never
//! the command line or the environment) and the domains they may send as; and `peagectl
//! outbound identity`: the accounts locked for sending spam.

use std::io::BufRead;

use serde_json::json;

use peage_client::v1::{
    IdentityListRequest, IdentityLockRequest, IdentityUnlockRequest, UserListRequest,
    UserRemoveRequest, UserSetRequest,
};
use peage_client::ClientError;

use super::context::Ctx;
use crate::cli::{IdentityCmd, PrincipalArgs, UserCmd};
use crate::output::{print_json, print_read_note, read_json};

/// One line of standard input, without its line end.
fn password_from_stdin() -> Result<String, ClientError> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password (shown as typed; pipe it in to keep it off the screen): ");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::InvalidArgument(format!("cannot read the password: {e}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(ClientError::InvalidArgument(
            "no password on standard input".into(),
        ));
    }
    Ok(password)
}

pub async fn run(ctx: &mut Ctx, cmd: UserCmd) -> Result<(), ClientError> {
    match cmd {
        UserCmd::Add {
            login,
            principal,
            no_password,
        } => {
            if principal.domains.is_empty() {
                return Err(ClientError::InvalidArgument(
                    "a new principal needs at least one --domain".into(),
                ));
            }
            let password = if no_password {
                String::new()
            } else {
                password_from_stdin()?
            };
            set(ctx, login, password, principal, no_password).await?;
        }
        UserCmd::Passwd { login, principal } => {
            set(ctx, login, password_from_stdin()?, principal, false).await?;
        }
        UserCmd::Edit { login, principal } => {
            set(ctx, login, String::new(), principal, false).await?;
        }
        UserCmd::Rm { login } => {
            let reply = ctx
                .admin()
                .await?
                .user_remove(UserRemoveRequest {
                    login: login.clone(),
                })
                .await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            println!("account {login} removed (log index {})", r.log_index);
        }
        UserCmd::Ls => {
            let stale = ctx.stale;
            let reply = ctx
                .admin()
                .await?
                .user_list(UserListRequest { stale })
                .await;
            let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
            if ctx.json {
                let users: Vec<_> = r
                    .users
                    .iter()
                    .map(|u| json!({"login": u.login, "domains": u.domains, "networks": u.networks, "identity": u.identity, "can_log_in": u.can_log_in, "author": u.author, "created_at_ms": u.created_at_ms}))
                    .collect();
                print_json(json!({"users": users, "read": read_json(&r.read)}));
            } else {
                println!(
                    "{:<32}  {:<28}  {:<20}  {:<16}  AUTHOR",
                    "LOGIN", "DOMAINS", "NETWORKS", "IDENTITY"
                );
                for u in &r.users {
                    let networks = match u.networks.join(",") {
                        n if n.is_empty() => "-".to_owned(),
                        n if u.can_log_in => n,
                        n => format!("{n} (only)"),
                    };
                    println!(
                        "{:<32}  {:<28}  {:<20}  {:<16}  {}",
                        u.login,
                        u.domains.join(","),
                        networks,
                        u.identity,
                        u.author
                    );
                }
                print_read_note(&r.read);
            }
        }
    }
    Ok(())
}

async fn set(
    ctx: &mut Ctx,
    login: String,
    password: String,
    principal: PrincipalArgs,
    no_password: bool,
) -> Result<(), ClientError> {
    let request = UserSetRequest {
        login: login.clone(),
        password,
        domains: principal.domains,
        networks: principal.networks,
        identity: principal.identity.unwrap_or_default(),
        no_password,
    };
    let reply = ctx.admin().await?.user_set(request).await;
    let r = reply.map_err(|e| ctx.failed(e))?.into_inner();
    let what = if r.created { "created" } else { "updated" };
    println!("principal {login} {what} (log index {})", r.log_index);
    Ok(())
}

pub async fn identities(ctx: &mut Ctx, cmd: IdentityCmd) -> Result<(), ClientError> {
    let stale = ctx.stale;
    let admin = ctx.admin().await?;
    let reply = match cmd {
        IdentityCmd::Lock { login, reason } => {
            let r = admin
                .identity_lock(IdentityLockRequest { login, reason })
                .await;
            r.map(|r| format!("locked (log index {})", r.into_inner().log_index))
        }
        IdentityCmd::Unlock { login } => {
            let r = admin.identity_unlock(IdentityUnlockRequest { login }).await;
            r.map(|r| format!("unlocked (log index {})", r.into_inner().log_index))
        }
        IdentityCmd::Ls => {
            let r = admin.identity_list(IdentityListRequest { stale }).await;
            let r = r.map_err(|e| ctx.failed(e))?.into_inner();
            let until = |ms: i64| match ms {
                i64::MAX => "until unlocked".to_owned(),
                ms => ms.to_string(),
            };
            if ctx.json {
                let rows: Vec<_> = r
                    .identities
                    .iter()
                    .map(|l| json!({"login": l.login, "reason": l.reason, "locked_at_ms": l.locked_at_ms, "until_ms": l.until_ms, "locks": l.locks, "author": l.author}))
                    .collect();
                print_json(json!({"identities": rows, "read": read_json(&r.read)}));
            } else {
                println!(
                    "{:<32}  {:<5}  {:<24}  REASON",
                    "LOGIN", "LOCKS", "UNTIL (UNIX ms)"
                );
                for l in &r.identities {
                    println!(
                        "{:<32}  {:<5}  {:<24}  {}",
                        l.login,
                        l.locks,
                        until(l.until_ms),
                        l.reason
                    );
                }
                print_read_note(&r.read);
            }
            return Ok(());
        }
    };
    let text = reply.map_err(|e| ctx.failed(e))?;
    println!("{text}");
    Ok(())
}
